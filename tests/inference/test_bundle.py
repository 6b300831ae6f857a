"""The model bundle, typed and checked on load: round trips, bundles written by earlier versions,
and a one-sentence UserError for every kind of damaged or hostile model.json and weights file."""

from __future__ import annotations

import json

import pytest
import torch

from imgclf.errors import UserError
from imgclf.inference import bundle_weights
from imgclf.inference.bundle import ModelMeta, load_bundle, read_meta, save_bundle, update_bundle_meta
from imgclf.models import create_model


@pytest.fixture
def bundle(tmp_path):
    torch.manual_seed(0)
    model = create_model("simple_cnn", 3).eval()
    save_bundle(model, tmp_path / "model", architecture="simple_cnn", classes=["cat", "dog", "eel"], preprocess={"img_size": 32},
                extra={"epoch": 2, "tta": "flip", "pretrained": None})  # fmt: skip
    return tmp_path / "model", model


def edit(directory, **changes):
    path = directory / "model.json"
    raw = json.loads(path.read_text())
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__")
            raw[outer][inner] = value
        else:
            raw[key] = value
    path.write_text(json.dumps(raw))


def test_round_trip_is_exact_and_typed(bundle):
    directory, model = bundle
    loaded, meta = load_bundle(directory)
    assert isinstance(meta, ModelMeta) and meta.classes == ("cat", "dog", "eel") and meta.num_classes == 3
    assert meta.preprocess.img_size == 32 and meta.tta == "flip" and meta.temperature == 1.0
    assert meta.extra["epoch"] == 2 and meta.unsure_evaluated is False and meta.is_unsure(0.1) is None
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert ModelMeta.from_dict(meta.to_dict()) == meta
    assert json.loads((directory / "model.json").read_text()) == meta.to_dict()
    assert not list(directory.glob(".*tmp*"))  # atomic writes left no temporary file


def test_a_bundle_written_by_the_previous_version_still_loads(bundle):
    """format_version 1 as the code before the typed bundle wrote it (no tta, no unsure threshold)."""
    directory, _ = bundle
    old = {
        "format": "imgclf-model", "format_version": 1, "imgclf_version": "0.1.0", "created": "2026-01-01T00:00:00+0000",
        "architecture": "simple_cnn", "model_kwargs": {}, "num_classes": 3, "classes": ["cat", "dog", "eel"],
        "preprocess": {"img_size": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                       "interpolation": "bilinear", "resize": "center-crop"},
        "temperature": 1.0, "epoch": 3, "val_accuracy": 0.9,
    }  # fmt: skip
    (directory / "model.json").write_text(json.dumps(old))
    _, meta = load_bundle(directory)
    assert meta.tta == "none" and meta.extra["val_accuracy"] == 0.9 and meta.extra["created"] == old["created"]


def test_update_merges_checks_and_keeps_evaluation_results(bundle):
    directory, _ = bundle
    meta = update_bundle_meta(directory, {"temperature": 1.7, "unsure_threshold": {"threshold": 0.8, "target_accuracy": 0.99,
                                                                                   "coverage": 0.9}})  # fmt: skip
    assert read_meta(directory) == meta and meta.temperature == 1.7 and meta.unsure_threshold["threshold"] == 0.8
    assert meta.is_unsure(0.79) is True and meta.is_unsure(0.8) is False  # answered at or above the threshold
    before = (directory / "model.json").read_text()
    with pytest.raises(UserError, match="temperature"):
        update_bundle_meta(directory, {"temperature": -1})
    assert (directory / "model.json").read_text() == before  # a refused update writes nothing
    assert update_bundle_meta(directory, {"unsure_threshold": None}).is_unsure(0.999) is True  # no threshold reached the target


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"preprocess__img_size": 100000}, "img_size must be a whole number from 8 to 2048"),
        ({"preprocess__img_size": 0}, "img_size"),
        ({"preprocess__img_size": "32"}, "img_size"),
        ({"preprocess__img_size": True}, "img_size"),
        ({"temperature": -1}, "temperature must be a positive finite number"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "1.0"}, "temperature"),
        ({"num_classes": 4}, "num_classes is 4 but classes lists 3 names"),
        ({"classes": ["cat", "cat", "eel"]}, "twice"),
        ({"classes": []}, "non-empty list"),
        ({"classes": ["cat", 2, "eel"]}, "string"),
        ({"tta": "rotate"}, "tta must be one of none, flip, flip-translate"),
        ({"preprocess__interpolation": "nearest"}, "interpolation must be one of bilinear, bicubic"),
        ({"preprocess__resize": "stretch"}, "resize"),
        ({"preprocess__mean": ["a", 0.4, 0.4]}, "mean must be a list of 3 finite numbers"),
        ({"preprocess__mean": [0.4, 0.4]}, "mean must be a list of 3"),
        ({"preprocess__std": [0.2, 0.0, 0.2]}, "std must be positive"),
        ({"model_kwargs": {"checkpoint_path": "/etc/passwd"}}, "model_kwargs may not set 'checkpoint_path'"),
        ({"model_kwargs": {"pretrained_cfg_overlay": {"file": "/tmp/w.pth"}}}, "may not set 'pretrained_cfg_overlay'"),
        ({"model_kwargs": {"drop_rate": 7}}, "drop_rate must be a number in"),
        ({"model_kwargs": []}, "model_kwargs must be an object"),
        ({"unsure_threshold": {"threshold": 2.0}}, "unsure_threshold threshold"),
        ({"architecture": 5}, "architecture must be a model name"),
        ({"format_version": 2}, "written by a newer imgclf"),
        ({"format": "something-else"}, "not an imgclf model bundle"),
    ],
)
def test_every_violation_is_one_sentence(bundle, monkeypatch, changes, message):
    directory, _ = bundle
    edit(directory, **changes)
    # Nothing from a refused model.json reaches the model factory (timm would read checkpoint_path).
    monkeypatch.setattr(bundle_weights, "create_model", lambda *a, **k: pytest.fail(f"create_model called with {k}"))
    with pytest.raises(UserError, match=message) as exc:
        load_bundle(directory)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400


def test_classes_must_match_the_weights_head(bundle):
    directory, _ = bundle
    edit(directory, classes=["cat", "dog", "eel", "fox"], num_classes=4)
    with pytest.raises(UserError, match="lists 4 classes but the weights .* have 3 outputs"):
        load_bundle(directory)


def test_a_model_kwarg_the_architecture_does_not_take_is_a_user_error(bundle):
    directory, _ = bundle
    edit(directory, model_kwargs={"patch": 2})  # fast_cnn's, not simple_cnn's
    with pytest.raises(UserError, match="cannot be built from its model_kwargs"):
        load_bundle(directory)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "holds no model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]), "damaged"),
        (lambda d: (d / "model.safetensors").write_bytes(b""), "damaged"),
        (lambda d: (d / "model.json").write_bytes(b"\xff\xfe{not json"), "not UTF-8"),
        (lambda d: (d / "model.json").write_text("[1, 2]"), "not an imgclf model bundle"),
        (lambda d: (d / "model.json").write_text('{"format": "imgclf-model", "format_version": "x"}'), "format_version"),
        (lambda d: (d / "model.json").write_text("[" * 100000), "not valid JSON"),
        (lambda d: (d / "model.json").unlink(), "holds no model.json"),
    ],
)
def test_missing_or_damaged_files_are_user_errors(bundle, damage, message):
    directory, _ = bundle
    damage(directory)
    with pytest.raises(UserError, match=message) as exc:
        load_bundle(directory)
    assert "\n" not in str(exc.value)


def test_save_refuses_metadata_predict_would_refuse(tmp_path):
    with pytest.raises(UserError, match="tta"):
        save_bundle(create_model("simple_cnn", 2), tmp_path, architecture="simple_cnn", classes=["a", "b"],
                    preprocess={"img_size": 32}, extra={"tta": "sideways"})  # fmt: skip
    assert not (tmp_path / "model.json").exists() and not (tmp_path / "model.safetensors").exists()
