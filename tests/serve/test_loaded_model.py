"""One model in service, on small untrained bundles (no training): its version, its description,
Grad-CAM overlays for an RGB model, the signature that says a new model arrived, and retirement
only once its last user is done."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image
from serve_helpers import BUNDLE_CLASSES as CLASSES
from serve_helpers import make_bundle, point_link, wait_for

from imgclf.serve.loaded_model import LoadedModel, model_signature
from imgclf.serve.settings import ServeSettings


@pytest.fixture
def rgb_run(tmp_path):
    return make_bundle(tmp_path / "run")


def loaded(run, **settings) -> LoadedModel:
    return LoadedModel(ServeSettings.checked(run=str(run), backend="torch", **settings))


def test_version_description_and_no_drift_without_a_baseline(rgb_run):
    model = loaded(rgb_run)
    try:
        assert model.version.startswith("run@") and len(model.version) == len("run@") + 12
        assert model.classes == CLASSES and model.evaluation is None
        d = model.describe()
        assert (d["architecture"], d["img_size"], d["backend"], d["unsure_evaluated"]) == ("simple_cnn", 32, "torch", False)
        assert model.drift_feed is None and "drift_baseline.json" in model.drift_unavailable
        probs = model.batcher.submit(np.zeros((32, 32, 3), np.uint8)).result(30)
        assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-5
    finally:
        model.retire()


def test_gradcam_overlay_of_an_rgb_model(rgb_run):
    model = loaded(rgb_run)
    try:
        pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        pixels.setflags(write=False)  # as decoded images are
        png, k, probs = model.explain_png(pixels, None)
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG" and img.size == (256, 256) and k == int(probs.argmax())
        png2, k2, _ = model.explain_png(pixels, 2)
        assert k2 == 2 and Image.open(io.BytesIO(png2)).size == (256, 256)
        assert model._explainer is not None and model._explainer is not model.predictor  # its own fp32 copy
    finally:
        model.retire()


def test_signature_changes_with_the_weights_and_with_the_link(tmp_path):
    a = make_bundle(tmp_path / "a", seed=0)
    b = make_bundle(tmp_path / "b", seed=1)
    link = tmp_path / "current"
    point_link(link, a)
    first = model_signature(link)
    assert model_signature(link) == first  # nothing changed
    point_link(link, b)
    assert model_signature(link) != first
    moved = model_signature(link)
    make_bundle(tmp_path / "b", seed=2)  # retrained in place
    assert model_signature(link) != moved


def test_retire_waits_for_the_last_user(rgb_run):
    model = loaded(rgb_run)
    model.acquire()
    retired = threading.Event()
    t = threading.Thread(target=lambda: (model.retire(), retired.set()))
    t.start()
    assert not retired.wait(0.3) and not model.batcher.closed
    assert model.batcher.submit(np.zeros((32, 32, 3), np.uint8)).result(30).shape == (3,)  # still answers
    model.release()
    wait_for(retired.is_set, timeout=30)
    assert model.batcher.closed
    t.join(5)
