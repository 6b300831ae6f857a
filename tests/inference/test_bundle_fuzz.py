"""Property-based tests (Hypothesis) of model.json: whatever a file holds, loading it either works
or raises a one-sentence UserError, never another exception, and quickly (no value in it can make
loading allocate more than a small model)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgclf.errors import UserError
from imgclf.inference.bundle import ModelMeta, load_bundle, read_meta, save_bundle
from imgclf.models import create_model
from imgclf.predict import Predictor

# Runs in seconds: a bounded number of examples, each of which must finish well within the deadline.
FUZZ = settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.too_slow], database=None)

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)  # floats: NaN, inf too
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)

# Values close to valid ones, so generated files get past the first check and reach the later ones.
NEAR_VALID = {
    "architecture": st.sampled_from(["simple_cnn", "fast_cnn", "lenet5", "no_such_net", ""]) | JSON_VALUES,
    "classes": st.lists(st.text(max_size=5), min_size=0, max_size=5) | JSON_VALUES,
    "num_classes": st.integers(-1, 6) | JSON_VALUES,
    "temperature": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3) | JSON_VALUES,
    "tta": st.sampled_from(["none", "flip", "flip-translate", "rotate"]) | JSON_VALUES,
    "model_kwargs": st.dictionaries(st.sampled_from(["drop_rate", "widths", "patch", "global_pool", "checkpoint_path", "in_chans"]),
                                    st.integers(0, 3) | st.floats(0, 1) | st.lists(st.integers(1, 16), max_size=3) | JSON_VALUES,
                                    max_size=2),  # fmt: skip
    "unsure_threshold": st.none() | st.fixed_dictionaries({"threshold": st.floats(-1, 2) | JSON_VALUES}) | JSON_VALUES,
    "format_version": st.integers(-1, 3) | JSON_VALUES,
}
NEAR_VALID_PREPROCESS = {
    "img_size": st.integers(-5, 5000) | JSON_VALUES,
    "mean": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4) | JSON_VALUES,
    "std": st.lists(st.floats(-1, 2, allow_nan=False), max_size=4) | JSON_VALUES,
    "interpolation": st.sampled_from(["bilinear", "bicubic", "nearest"]) | JSON_VALUES,
    "resize": st.sampled_from(["center-crop", "stretch"]) | JSON_VALUES,
}


@st.composite
def model_json(draw) -> dict:
    """A valid model.json with some keys replaced, removed or added."""
    raw = {
        "format": "imgclf-model", "format_version": 1, "architecture": "simple_cnn", "model_kwargs": {}, "num_classes": 3,
        "classes": ["a", "b", "c"], "temperature": 1.0, "tta": "none",
        "preprocess": {"img_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
                       "resize": "center-crop"},
    }  # fmt: skip
    for key in draw(st.lists(st.sampled_from(sorted(NEAR_VALID)), max_size=3, unique=True)):
        raw[key] = draw(NEAR_VALID[key])
    for key in draw(st.lists(st.sampled_from(sorted(NEAR_VALID_PREPROCESS)), max_size=3, unique=True)):
        raw["preprocess"][key] = draw(NEAR_VALID_PREPROCESS[key])
    for key in draw(st.lists(st.sampled_from(sorted(raw)), max_size=2, unique=True)):
        del raw[key]
    if draw(st.booleans()):
        raw[draw(st.text(max_size=10))] = draw(JSON_VALUES)
    if draw(st.integers(0, 9)) == 0:
        raw["preprocess"] = draw(JSON_VALUES)
    return raw


@pytest.fixture(scope="module")
def weights_dir():
    """A saved 3-class simple_cnn whose model.json each example replaces."""
    directory = Path(tempfile.mkdtemp(prefix="imgclf-fuzz-"))
    torch.manual_seed(0)
    save_bundle(create_model("simple_cnn", 3), directory, architecture="simple_cnn", classes=["a", "b", "c"], preprocess={"img_size": 16})
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def write(directory: Path, content: bytes) -> None:
    (directory / "model.json").write_bytes(content)


def check_loads_or_refuses(directory: Path) -> None:
    try:
        model, meta = load_bundle(directory)
    except UserError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
        return
    # What loaded is usable: predicting gives finite probabilities summing to one.
    assert isinstance(meta, ModelMeta) and math.isfinite(meta.temperature) and meta.temperature > 0
    if meta.preprocess.img_size <= 64:
        pred = Predictor.from_model(model, meta, device="cpu", precision="fp32").predict(np.zeros((20, 20, 3), np.uint8))
        assert pred.error is None and 0.0 <= pred.probability <= 1.0 and pred.unsure in (None, True, False)
        assert sum(p for _, p in pred.top) == pytest.approx(1.0, abs=1e-4) or len(pred.top) < len(meta.classes)


@FUZZ
@given(raw=model_json())
def test_a_mutated_model_json_loads_or_gives_a_user_error(weights_dir, raw):
    write(weights_dir, json.dumps(raw).encode())
    check_loads_or_refuses(weights_dir)


@FUZZ
@given(value=JSON_VALUES)
def test_any_json_document_is_refused_with_a_user_error(weights_dir, value):
    write(weights_dir, json.dumps(value).encode())
    with pytest.raises(UserError):
        read_meta(weights_dir)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_give_a_user_error(weights_dir, data):
    write(weights_dir, data)
    with pytest.raises(UserError):
        read_meta(weights_dir)
