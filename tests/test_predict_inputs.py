"""What Predictor.predict accepts: one input gives one Prediction, many give a list; paths, folders,
globs, bytes, PIL images and numpy arrays; broken and looping symbolic links and file names that
are not UTF-8 get rows, never vanish or crash; "unsure" and repr. A small untrained model suffices:
these tests check the plumbing, not accuracy."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import synth
import torch
from PIL import Image

from imgclf.errors import UserError
from imgclf.inference.bundle import save_bundle, update_bundle_meta
from imgclf.predict import Prediction, expand_inputs, load, write_predictions


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    from imgclf.models import create_model

    save_bundle(create_model("simple_cnn", 3), tmp_path / "run" / "model", architecture="simple_cnn",
                classes=["circle", "square", "triangle"], preprocess={"img_size": 32})  # fmt: skip
    return tmp_path / "run"


@pytest.fixture
def predictor(run):
    return load(run, device="cpu", precision="fp32")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    synth.shape_image("circle", size=40).save(folder / "a.png")
    synth.shape_image("square", size=48, seed=1).save(folder / "b.jpg")
    return folder


def test_one_path_gives_one_prediction_not_one_per_character(predictor, images):
    path = str(images / "a.png")
    one = predictor.predict(path)
    assert isinstance(one, Prediction) and one.path == path and one.error is None and one.label in predictor.classes
    assert predictor.predict(images / "a.png").probability == one.probability  # PathLike too
    many = predictor.predict([path, images / "b.jpg"])
    assert isinstance(many, list) and [p.path for p in many] == [path, str(images / "b.jpg")]


def test_every_kind_of_image_gives_the_prediction_of_the_same_pixels(predictor, images):
    img = Image.open(images / "a.png")
    expected = predictor.predict(str(images / "a.png"))
    for given in (img, np.asarray(img), (images / "a.png").read_bytes(), ("mine.png", (images / "a.png").read_bytes())):
        got = predictor.predict(given)
        assert isinstance(got, Prediction) and got.error is None, type(given)
        assert got.label == expected.label and got.probability == pytest.approx(expected.probability, abs=1e-6)
    assert predictor.predict(("mine.png", b"x")).path == "mine.png"


def test_grayscale_and_rgba_arrays_and_batches(predictor):
    gray = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    as_rgb = predictor.predict(np.stack([gray] * 3, axis=-1))
    assert predictor.predict(gray).probability == pytest.approx(as_rgb.probability, abs=1e-6)
    assert predictor.predict(gray[:, :, None]).probability == pytest.approx(as_rgb.probability, abs=1e-6)
    opaque = np.concatenate([np.stack([gray] * 3, axis=-1), np.full((30, 40, 1), 255, np.uint8)], axis=-1)
    assert predictor.predict(opaque).probability == pytest.approx(as_rgb.probability, abs=1e-6)
    batch = predictor.predict(np.zeros((3, 32, 32, 3), np.uint8))
    assert isinstance(batch, list) and len(batch) == 3
    bad = predictor.predict(np.zeros((8, 8, 3), np.float32))
    assert bad.error and "uint8" in bad.error and bad.label is None


def test_folders_and_globs_give_lists(predictor, images):
    assert [os.path.basename(p.path) for p in predictor.predict(str(images))] == ["a.png", "b.jpg"]
    assert [os.path.basename(p.path) for p in predictor.predict(str(images / "*.png"))] == ["a.png"]
    with pytest.raises(UserError, match="no file matches"):
        predictor.predict(str(images / "*.gif"))


def test_something_that_is_not_an_image_is_a_user_error(predictor):
    with pytest.raises(UserError, match="cannot predict a int"):
        predictor.predict(5)
    with pytest.raises(UserError, match="cannot predict a dict"):
        predictor.predict([{"x": 1}])


def test_broken_and_looping_symlinks_get_error_rows(predictor, images):
    os.symlink(images / "gone.png", images / "broken.png")
    os.symlink(images / "loop.png", images / "loop.png")
    reasons = {os.path.basename(p.path): p.error for p in predictor.predict(str(images))}
    assert reasons["a.png"] is None and "broken symbolic link" in reasons["broken.png"]
    assert "symbolic link loop" in reasons["loop.png"]
    by_glob = {os.path.basename(p.path): p.error for p in predictor.predict(str(images / "*.png"))}
    assert set(by_glob) == {"a.png", "broken.png", "loop.png"} and "broken" in by_glob["broken.png"]
    assert "loop" in predictor.predict(str(images / "loop.png")).error  # named directly
    assert expand_inputs([str(images / "*.png")]) == sorted(str(images / n) for n in ("a.png", "broken.png", "loop.png"))


def test_file_names_that_are_not_utf8_are_written(predictor, images, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1: not valid UTF-8
    synth.shape_image("triangle", size=32).save(images / name)
    preds = predictor.predict(str(images))
    odd = next(p for p in preds if p.path.endswith(name))
    assert odd.error is None and os.path.exists(odd.path)  # the path still names the real file
    assert odd.display_path.endswith("caf\ufffd.png")
    write_predictions(tmp_path / "p.csv", preds)
    write_predictions(tmp_path / "p.json", preds)
    rows = list(csv.DictReader((tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()))
    assert any(r["path"].endswith("caf\ufffd.png") and r["label"] for r in rows)
    data = json.loads((tmp_path / "p.json").read_bytes().decode("utf-8"))
    assert any(d["path"].endswith("caf\ufffd.png") for d in data)


def test_unsure_follows_the_threshold_evaluation_stored(run, images, tmp_path):
    path = str(images / "a.png")
    assert load(run, device="cpu").predict(path).unsure is None  # never evaluated
    p = load(run, device="cpu", precision="fp32").predict(path)
    update_bundle_meta(run / "model", {"unsure_threshold": {"threshold": p.probability + 1e-6, "target_accuracy": 0.99, "coverage": 0.5}})
    assert load(run, device="cpu", precision="fp32").predict(path).unsure is True
    update_bundle_meta(run / "model", {"unsure_threshold": {"threshold": p.probability - 1e-6, "target_accuracy": 0.99, "coverage": 0.5}})
    sure = load(run, device="cpu", precision="fp32").predict([path, b"not an image"])
    assert sure[0].unsure is False and sure[1].unsure is None and sure[1].error
    assert sure[0].to_dict()["unsure"] is False
    write_predictions(tmp_path / "p.csv", sure)
    rows = list(csv.DictReader((tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()))
    assert [r["unsure"] for r in rows] == ["false", ""]


def test_repr_says_what_runs(predictor):
    text = repr(predictor)
    for part in ("simple_cnn", "3 classes", "backend=torch", "precision=fp32", "device=cpu", "img_size=32", "tta=none"):
        assert part in text
