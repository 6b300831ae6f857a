"""cli/render.py: what the commands print, from what the API returns."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import synth

from imgclf.api import ModelList
from imgclf.cli import render
from imgclf.data.audit import check_data


def test_data_check_report_is_readable_plain_text(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=3, splits=("train", "val", "test"))
    (tmp_path / "train" / "circle" / "cut[1].jpg").write_bytes(synth.truncated_jpeg())
    (tmp_path / "val" / "square" / "noise.jpg").write_bytes(synth.random_bytes())
    shutil.copy(tmp_path / "train/square/square_000.png", tmp_path / "test/square/copy.png")

    text = render.check_report(check_data(tmp_path))

    assert "circle" in text and "square" in text
    assert "train/circle/cut[1].jpg" in text  # brackets survive (no markup interpretation)
    assert "val/square/noise.jpg" in text and "truncated" in text
    assert "leakage" in text
    assert "ERROR" in text and "Result: 2 errors" in text
    assert "\x1b[" not in text  # no colour codes
    header = next(line for line in text.splitlines() if line.lstrip().startswith("class"))
    assert header.split() == ["class", "images", "share", "train", "val", "test"]


def test_data_check_of_a_clean_dataset(tmp_path, capsys):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=4)
    render.data_check(check_data(tmp_path))
    assert "Result: no problems found" in capsys.readouterr().out
    render.data_check({"problems": [], "x": 1}, as_json=True)
    assert '"x": 1' in capsys.readouterr().out


def test_models_table_and_json(capsys):
    rows = [{"name": "simple_cnn", "source": "imgclf", "params": 1_500_000, "gflops": 0.012, "default_img_size": 32,
             "description": "small"}]  # fmt: skip
    render.models(ModelList(rows, 1234), None)
    out = capsys.readouterr().out
    assert "simple_cnn" in out and "1.50M" in out and "0.012" in out and "timm has 1234" in out
    render.models(ModelList(rows, 1234), 64, as_json=True)
    assert '"name": "simple_cnn"' in capsys.readouterr().out


def test_bench_train_summary(capsys):
    r = {
        "model": "fast_cnn", "img_size": 32, "batch_size": 256, "classes": 10, "preset": "fast-small", "augmentation": ["flip"],
        "device_name": "cpu", "device": "cpu", "precision": "bf16", "precision_reason": "CPU has AVX-512 BF16",
        "machine": {"cpu": "EPYC", "cpus_available": 2, "cpu_count": 2, "torch_threads": 2}, "versions": {"torch": "2.x"},
        "images": 1000, "prepare_seconds": 1.5, "warmup": 3, "steps": 20, "pipeline_images_per_second": 50000.0,
        "train_images_per_second": 2000.0, "step_seconds_mean": 0.128, "step_seconds_std": 0.004, "pipeline_to_train_ratio": 25.0,
        "flops_per_image": 3e8, "train_flops_per_image": 9e8, "achieved_tflops": 1.8, "matmul_peak_tflops": 0.38,
        "matmul_peak_dtype": "bf16", "matmul_peak_size": 2048, "peak_fraction": 0.5,
    }  # fmt: skip
    render.bench_train(r)
    out = capsys.readouterr().out
    assert "fast_cnn at 32px, batch 256, 10 classes, preset fast-small" in out
    assert "2,000 img/s; step 128.00 +- 4.00 ms" in out and "50.0%" in out


def test_export_summary_with_a_failed_int8_check(tmp_path, capsys):
    (tmp_path / "model.onnx").write_bytes(b"x" * 2_000_000)
    parity = {
        "fp32": {"images": 100, "split": "val", "top1_agreement": 1.0, "disagreements": 0, "max_abs_prob_diff": 1e-6, "passed": True},
        "int8": {"vs_fp32": {"images": 100, "top1_agreement": 0.97}, "split": "test", "accuracy_int8": 0.9, "accuracy_fp32": 0.95,
                 "accuracy_drop_points": 5.0, "passed": False, "allowed_drop_points": 1.0, "speed": {"speedup": 2.5, "batch": 32}},
    }  # fmt: skip
    result = SimpleNamespace(files={"onnx": tmp_path / "model.onnx"}, parity=parity, notes=["n1"], export_dir=tmp_path)
    render.exported(result, run="runs/a")
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'model.onnx'} (2.0 MB)" in out
    assert "top-1 agreement 100.00%" in out and ": ok" in out
    assert "5.00 points lost: FAILED (at most 1 allowed)" in out and "note: n1" in out
    assert "Next: imgclf predict runs/a" in out


def test_train_summary(capsys):
    result = SimpleNamespace(
        config=SimpleNamespace(model="simple_cnn"), split_sizes={"train": 80, "val": 10, "test": 10}, epochs=2, seconds=12.3,
        precision="bf16", images_read=100, images_skipped=1, best_val_accuracy=0.9, best_epoch=2, run_dir=Path("runs/a"),
    )  # fmt: skip
    render.trained(result)
    out = capsys.readouterr().out
    assert "Trained simple_cnn for 2 epochs in 12s (bf16)." in out and "train 80 / val 10 / test 10" in out
    assert "Best validation accuracy: 0.9000 (epoch 2)." in out and "Next: imgclf evaluate runs/a" in out
