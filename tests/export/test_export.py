"""`imgclf export`: ONNX / TorchScript files checked with onnxruntime and torch.jit themselves,
int8 quantization, and the failure paths (a preprocessing mistake, a badly calibrated int8 model)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from runcopy import copy_run

import imgclf
from imgclf.cli import main
from imgclf.data.dataset import read_splits_csv
from imgclf.data.preprocess import Preprocess
from imgclf.data.sources import open_source
from imgclf.errors import UserError
from imgclf.export.export import ExportCheckFailed
from imgclf.inference.bundle import load_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(digits_run, tmp_path_factory):
    """A copy of the digits run exported once to ONNX with int8 (shared, read-only)."""
    run = copy_run(digits_run, tmp_path_factory.mktemp("exported") / "run")
    result = imgclf.export(run, int8=True, allow_drop=100)
    return run, result


def split_pixels(run, split: str):
    """uint8 NHWC pixels and labels of a split, decoded here from the source's bytes (not the cache)."""
    meta = json.loads((run / "model" / "model.json").read_text())
    pre = Preprocess.from_dict(meta["preprocess"])
    source = open_source("builtin:digits")
    rows = [(p, lab) for p, (lab, sp, _) in read_splits_csv(run / "splits.csv").items() if sp == split]
    pixels = np.stack([pre.load(source.read_bytes(p)) for p, _ in rows])
    labels = np.array([meta["classes"].index(lab) for _, lab in rows])
    return pixels, labels, meta


def torch_fp32_logits(run, pixels: np.ndarray) -> np.ndarray:
    """The PyTorch model with normalisation written out here, independently of the package's path."""
    model, meta = load_bundle(run / "model")
    mean = np.array(meta.preprocess.mean, dtype=np.float32)
    std = np.array(meta.preprocess.std, dtype=np.float32)
    x = ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    with torch.no_grad():
        return model.float()(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def ort_logits(path, pixels: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: pixels})[0]


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_onnx_export_agrees_with_pytorch_in_onnxruntime(exported):
    run, _ = exported
    pixels, _, _ = split_pixels(run, "val")
    ref = torch_fp32_logits(run, pixels)
    got = ort_logits(run / "export" / "model.onnx", pixels)
    assert (got.argmax(1) == ref.argmax(1)).all()
    assert np.abs(softmax(got) - softmax(ref)).max() < 1e-4
    # dynamic batch axis: one image and an odd batch give the same rows
    np.testing.assert_allclose(ort_logits(run / "export" / "model.onnx", pixels[:1]), got[:1], atol=1e-4)
    np.testing.assert_allclose(ort_logits(run / "export" / "model.onnx", pixels[3:10]), got[3:10], atol=1e-4)


def test_parity_json_records_the_check(exported):
    run, result = exported
    parity = json.loads((run / "export" / "parity.json").read_text())
    n_val = sum(1 for _, sp, _ in read_splits_csv(run / "splits.csv").values() if sp == "val")
    assert parity["fp32"]["split"] == "val" and parity["fp32"]["images"] == n_val
    assert parity["fp32"]["passed"] and parity["fp32"]["top1_agreement"] == 1.0
    assert 0 <= parity["fp32"]["max_abs_prob_diff"] < 1e-4
    assert result.parity["fp32"] == parity["fp32"]


def test_metadata_makes_the_file_self_contained(exported):
    run, _ = exported
    meta = json.loads((run / "model" / "model.json").read_text())
    props = {p.key: p.value for p in onnx.load(str(run / "export" / "model.onnx")).metadata_props}
    assert json.loads(props["classes"]) == meta["classes"]
    assert int(props["img_size"]) == meta["preprocess"]["img_size"]
    assert json.loads(props["mean"]) == pytest.approx(meta["preprocess"]["mean"])
    assert json.loads(props["std"]) == pytest.approx(meta["preprocess"]["std"])
    assert float(props["temperature"]) == meta["temperature"]
    digest = hashlib.sha256((run / "model" / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads(props["imgclf.export"])["weights_sha256"] == digest
    assert json.loads(props["imgclf.model_json"])["architecture"] == meta["architecture"]


def test_int8_model_is_quantized_and_its_reported_accuracy_is_true(exported):
    run, _ = exported
    path = run / "export" / "model.int8.onnx"
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.initializer)
    pixels, labels, _ = split_pixels(run, "test")
    acc8 = (ort_logits(path, pixels).argmax(1) == labels).mean()
    acc32 = (ort_logits(run / "export" / "model.onnx", pixels).argmax(1) == labels).mean()
    q = json.loads((run / "export" / "parity.json").read_text())["int8"]
    assert q["accuracy_int8"] == pytest.approx(acc8) and q["accuracy_fp32"] == pytest.approx(acc32)
    assert q["accuracy_drop_points"] == pytest.approx(100 * (acc32 - acc8))
    assert q["passed"] == (q["accuracy_drop_points"] <= q["allowed_drop_points"] + 1e-9)
    assert "percentile" in q["quantization"]  # robust calibration ranges (test_quantize.py checks them)
    assert acc8 > 0.9  # a working quantization of a ~98% model
    assert (path.stat().st_size) < 0.5 * (run / "export" / "model.onnx").stat().st_size


def test_badly_calibrated_int8_fails_and_says_so(digits_run, tmp_path, monkeypatch, capsys):
    """Calibrating on blank images gives activation ranges real images overflow: the accuracy
    check must catch it, exit 2, and keep the files for inspection."""
    from imgclf.export import quantize

    real = quantize.quantize_int8

    def blank_calibration(fp32_path, out_path, calibration, properties):
        blank = [np.zeros_like(x) for x in calibration]
        real(fp32_path, out_path, iter(blank), properties)

    monkeypatch.setattr(quantize, "quantize_int8", blank_calibration)
    run = copy_run(digits_run, tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run), "--int8"])
    assert exc.value.code == 2
    out = capsys.readouterr()
    assert "accuracy points" in out.err and "--allow-drop" in out.err and "Traceback" not in out.err
    parity = json.loads((run / "export" / "parity.json").read_text())
    assert parity["fp32"]["passed"] and not parity["int8"]["passed"]
    assert (run / "export" / "model.int8.onnx").exists()


def test_preprocessing_drift_fails_the_parity_check(digits_run, tmp_path, monkeypatch):
    """The classic broken export: the graph forgets the mean/std normalisation."""
    from imgclf.export import onnx_export
    from imgclf.export.graph import PixelsToLogits

    class Unnormalised(PixelsToLogits):
        def __init__(self, model, mean, std):
            super().__init__(model, tuple(0.0 for _ in mean), tuple(1.0 for _ in std))

    monkeypatch.setattr(onnx_export, "PixelsToLogits", Unnormalised)
    run = copy_run(digits_run, tmp_path / "run")
    with pytest.raises(ExportCheckFailed, match="agrees with PyTorch on only") as exc:
        imgclf.export(run)
    assert not exc.value.result.parity["fp32"]["passed"]
    parity = json.loads((run / "export" / "parity.json").read_text())
    assert parity["fp32"]["top1_agreement"] < 0.999 and (run / "export" / "model.onnx").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_torchscript_export_loads_with_torch_jit_and_matches(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path / "run")
    result = imgclf.export(run, format="torchscript")
    path = run / "export" / "model.torchscript.pt"
    assert result.files["torchscript"] == path and result.parity["fp32"]["passed"]
    extra = {"imgclf.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    props = json.loads(extra["imgclf.json"])
    pixels, _, meta = split_pixels(run, "val")
    assert json.loads(props["classes"]) == meta["classes"]
    with torch.no_grad():
        got = module(torch.from_numpy(pixels[:20])).numpy()
    np.testing.assert_allclose(softmax(got), softmax(torch_fp32_logits(run, pixels[:20])), atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "torchscript", "--int8"], "--int8"),
        (["--allow-drop", "-1", "--int8"], "cannot be negative"),
    ],
)
def test_export_mistakes_exit_2(digits_run, args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", str(digits_run), *args])  # refused before anything is written
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert not (digits_run / "export").exists()


def test_export_of_a_missing_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        imgclf.export(tmp_path / "nope")


def test_bench_infer_times_every_backend(exported, capsys):
    run, _ = exported
    main(["bench", "infer", str(run), "--runs", "3", "--batch", "4", "--batch-runs", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    names = [b["backend"] for b in result["backends"]] + [s["backend"] for s in result["skipped"]]
    assert sorted(names) == sorted(["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"])
    assert {"onnx-fp32", "onnx-int8", "torch-fp32"} <= {b["backend"] for b in result["backends"]}
    for b in result["backends"]:
        lat = b["latency_ms_batch1"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
        assert b["throughput_images_per_s"]["mean"] > 0 and b["throughput_images_per_s"]["runs"] == 2
        assert 0 < b["preprocess_share"] < 1 and b["end_to_end_ms"]["p50"] > b["preprocess_ms"]["p50"]
    assert result["machine"]["cores_available"] >= 1 and "onnxruntime" in result["versions"]
    assert result["runs"] == 3 and "builtin:digits" in result["end_to_end_images"]
