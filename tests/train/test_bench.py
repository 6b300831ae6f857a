"""bench_train on a tiny folder: every figure is present and positive, FLOPs match a hand count."""

from __future__ import annotations

import pytest
from synth import make_folder

from imgclf.cli import render
from imgclf.errors import UserError
from imgclf.train.bench import bench_train

KEYS = {
    "model", "img_size", "batch_size", "steps", "warmup", "images", "classes", "device", "device_name",
    "precision", "precision_reason", "prepare_seconds", "pipeline_images_per_second",
    "train_images_per_second", "step_seconds_mean", "step_seconds_std", "pipeline_to_train_ratio",
    "flops_per_image", "train_flops_per_image", "achieved_tflops", "matmul_peak_tflops",
    "matmul_peak_size", "matmul_peak_dtype", "peak_fraction", "machine", "versions",
}  # fmt: skip
RATES = ("pipeline_images_per_second", "train_images_per_second", "achieved_tflops", "matmul_peak_tflops", "peak_fraction")


def simple_cnn_flops(img_size: int, num_classes: int, widths=(32, 64, 128)) -> int:
    """Forward FLOPs of SimpleCNN counted as FlopCounterMode does: 2*Cin*Cout*k*k*H*W per 3x3
    'same' conv, 2*in*out for the linear head; norms, activations and pooling are not counted."""
    flops, cin, size = 0, 3, img_size
    for w in widths:
        flops += 2 * cin * w * 9 * size * size + 2 * w * w * 9 * size * size
        cin, size = w, size // 2
    return flops + 2 * cin * num_classes


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("bench") / "data", per_class=20)


def run(folder, **kw):
    return bench_train(folder, model="simple_cnn", img_size=32, batch_size=8, steps=2, warmup=1, device="cpu", **kw)


def test_bench_reports_every_figure(folder, capsys):
    r = run(folder)
    assert KEYS <= set(r)
    assert r["steps"] == 2 and r["images"] > 0 and r["classes"] == 3
    for key in RATES:
        assert r[key] > 0, key
    assert r["step_seconds_mean"] > 0 and r["step_seconds_std"] >= 0
    assert r["prepare_seconds"] >= 0
    assert {"cpu", "cpu_count", "torch_threads"} <= set(r["machine"])
    assert {"torch", "torchvision", "timm"} <= set(r["versions"])
    render.bench_train(r)
    text = capsys.readouterr().out
    assert "img/s" in text and "TFLOP/s" in text


def test_flops_match_a_hand_count(folder):
    r = run(folder, precision="fp32")
    assert r["precision"] == "fp32" and r["precision_reason"] == "requested"
    assert r["matmul_peak_dtype"] == "float32"
    assert r["flops_per_image"] == simple_cnn_flops(32, 3)
    # Backward costs two forwards (input and weight gradients), less the first conv's input gradient.
    assert 2.5 * r["flops_per_image"] < r["train_flops_per_image"] < 3.5 * r["flops_per_image"]
    assert r["achieved_tflops"] == pytest.approx(r["train_flops_per_image"] * r["train_images_per_second"] / 1e12)


def test_bad_arguments_are_user_errors(folder):
    with pytest.raises(UserError, match="steps"):
        bench_train(folder, steps=0)
    with pytest.raises(UserError, match="precision"):
        bench_train(folder, precision="fp16")


def test_bench_builds_the_run_train_would_make_preset_and_augmentation_included(folder):
    r = bench_train(folder, preset="fast-small", batch_size=8, steps=2, warmup=1, device="cpu")
    assert r["model"] == "fast_cnn" and r["preset"] == "fast-small" and r["img_size"] == 32
    assert r["augmentation"] == ["random crop (pad 2px)", "alternating horizontal flip"]  # the preset's, not a fixed one
    assert run(folder, rotation=10.0, mixup=0.2)["augmentation"] == [
        "rotation (up to 10 deg, reflect fill)", "random crop (pad 4px)", "horizontal flip", "mixup (alpha 0.2)",
    ]  # fmt: skip
    assert run(folder, flip=False, crop_padding=0.0)["augmentation"] == ["none"]
