"""The Predictor's backends: onnxruntime against PyTorch (fp32), test-time augmentation on both,
a lone .onnx file, stale exports, calibration from model.json, and error rows for broken files."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnxruntime as ort
import pytest
import synth
import torch
from runcopy import copy_run
from safetensors.torch import load_file, save_file

import imgclf
from imgclf.cli import main
from imgclf.errors import UserError
from imgclf.inference.backends import Backend, TorchBackend
from imgclf.inference.bundle import update_bundle_meta
from imgclf.inference.onnx_backend import OnnxBackend
from imgclf.predict import Predictor, builtin_inputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(digits_run, tmp_path_factory):
    """A copy of the digits run with an fp32 ONNX export (shared; tests that write copy it again)."""
    run = copy_run(digits_run, tmp_path_factory.mktemp("predict") / "run")
    imgclf.export(run, limit=60)
    return run


@pytest.fixture(scope="module")
def pixels(exported):
    pre = imgclf.load(exported, backend="torch").preprocess
    return np.stack([pre.load(data) for _, data in builtin_inputs("builtin:digits", limit=40)])


def softmax(z, t=1.0):
    e = np.exp(z / t - (z / t).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("tta", ["none", "flip", "flip-translate"])
def test_onnx_backend_matches_torch_fp32(exported, pixels, tta):
    torch_p = imgclf.load(exported, backend="torch", precision="fp32")
    onnx_p = imgclf.load(exported, backend="onnx")
    assert isinstance(onnx_p.runtime, OnnxBackend) and onnx_p.model is None and onnx_p.backend == "onnx"
    assert isinstance(torch_p.runtime, TorchBackend) and all(isinstance(p.runtime, Backend) for p in (torch_p, onnx_p))
    a = torch_p.batch_logits([torch.from_numpy(pixels)], tta=tta)
    b = onnx_p.batch_logits([torch.from_numpy(pixels)], tta=tta)
    np.testing.assert_allclose(b, a, atol=1e-4)
    if tta == "none":  # and the backend is exactly onnxruntime on the raw file
        sess = ort.InferenceSession(str(exported / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(b, sess.run(None, {"pixels": pixels})[0], atol=1e-6)


def test_predict_gives_the_same_answers_on_both_backends(exported):
    items = builtin_inputs("builtin:digits", limit=30)
    a = imgclf.load(exported, backend="torch", precision="fp32").predict(items, top_k=3)
    b = imgclf.load(exported, backend="onnx").predict(items, top_k=3)
    assert [p.label for p in a] == [p.label for p in b]
    assert max(abs(x.probability - y.probability) for x, y in zip(a, b)) < 1e-4


def test_auto_uses_a_fresh_export_and_a_lone_onnx_file_works(exported, pixels):
    assert imgclf.load(exported).backend == "onnx"
    lone = imgclf.load(exported / "export" / "model.onnx")
    meta = json.loads((exported / "model" / "model.json").read_text())
    assert lone.classes == meta["classes"] and lone.preprocess.img_size == meta["preprocess"]["img_size"]
    assert lone.temperature == meta["temperature"]


def test_stale_export_is_never_used_silently(exported, tmp_path):
    run = copy_run(exported, tmp_path / "run")
    weights = run / "model" / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01  # "retrained": the export no longer matches
    save_file(tensors, str(weights))
    p = imgclf.load(run)
    assert type(p) is Predictor and p.backend == "torch" and p.model is not None
    with pytest.raises(UserError, match="export again"):
        imgclf.load(run, backend="onnx")


def test_temperature_from_model_json_wins_over_the_export(exported, pixels, tmp_path):
    """Evaluation may re-fit the temperature after export: model.json is the source of truth."""
    run = copy_run(exported, tmp_path / "run")
    update_bundle_meta(run / "model", {"temperature": 2.5})
    p = imgclf.load(run, backend="onnx")
    assert p.temperature == 2.5
    sess = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    raw = sess.run(None, {"pixels": pixels})[0]
    np.testing.assert_allclose(p.probabilities(pixels), softmax(raw, 2.5), atol=1e-5)


def test_corrupt_file_gets_an_error_row_on_the_onnx_backend(exported, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    synth.shape_image("circle", size=40).save(folder / "a.png")
    synth.shape_image("square", size=50, seed=1).save(folder / "b.jpg")
    (folder / "broken.jpg").write_bytes(synth.truncated_jpeg())
    out = tmp_path / "pred.csv"
    main(["predict", str(exported), str(folder), "--backend", "onnx", "-o", str(out)])
    with open(out, newline="") as fh:
        rows = {r["path"].split("/")[-1]: r for r in csv.DictReader(fh)}
    assert rows["broken.jpg"]["error"] and not rows["broken.jpg"]["label"]
    assert rows["a.png"]["label"] and not rows["a.png"]["error"]
    p = imgclf.load(exported, backend="onnx")
    expect = p.probabilities(np.stack([p.preprocess.load((folder / "a.png").read_bytes())]))[0].max()
    assert float(rows["a.png"]["probability"]) == pytest.approx(expect, abs=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{run}/model/model.json"], "not an .onnx export"),
        (["{run}/export/model.onnx", "--backend", "torch"], "onnx backend"),
        (["{run}", "--backend", "onnx-int8"], "imgclf export"),
    ],
)
def test_backend_mistakes_exit_2(exported, args, message, capsys):
    args = [a.format(run=exported) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(["predict", args[0], "builtin:digits", "--limit", "1", *args[1:]])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_unknown_backend_is_refused(digits_run):
    with pytest.raises(UserError, match="unknown backend"):
        imgclf.load(digits_run, backend="tensorrt")


def test_an_export_interrupted_before_its_check_is_never_used(exported, tmp_path):
    """The export wrote a new model.onnx and was killed before checking it: parity.json still holds
    the old file's record, which must not vouch for the new file."""
    from imgclf.export.onnx_export import export_onnx
    from imgclf.inference.bundle import load_bundle, weights_digest

    run = copy_run(exported, tmp_path / "run")
    assert imgclf.load(run).backend == "onnx"
    model, meta = load_bundle(run / "model")
    info = {"weights_sha256": weights_digest(run / "model"), "quantized": False, "created": "after the check"}
    export_onnx(model.float().eval(), meta, run / "export" / "model.onnx", export_info=info)
    assert imgclf.load(run).backend == "torch"
    with pytest.raises(UserError, match="not the file that was checked"):
        imgclf.load(run, backend="onnx")


def test_an_export_that_failed_its_check_is_never_used(exported, tmp_path, monkeypatch, capsys):
    from imgclf.export import onnx_export
    from imgclf.export.export import ExportCheckFailed
    from imgclf.export.graph import PixelsToLogits

    class Unnormalised(PixelsToLogits):
        def __init__(self, model, mean, std):
            super().__init__(model, tuple(0.0 for _ in mean), tuple(1.0 for _ in std))

    run = copy_run(exported, tmp_path / "run")
    monkeypatch.setattr(onnx_export, "PixelsToLogits", Unnormalised)
    with pytest.raises(ExportCheckFailed):
        imgclf.export(run, limit=60)
    assert (run / "export" / "model.onnx").exists()
    assert imgclf.load(run).backend == "torch"
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(run), "builtin:digits", "--limit", "1", "--backend", "onnx"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "failed its export check" in err and "Traceback" not in err
