"""`imgclf retrain`: a run trained on its data plus feedback, graded against the old one."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
import yaml
from PIL import Image
from runcopy import copy_run
from synth import encode, shape_image

import imgclf
from imgclf.cli.app import main
from imgclf.data.sources import open_source
from imgclf.errors import UserError
from imgclf.inference.bundle import read_meta
from imgclf.retrain.promote import point_link
from imgclf.serve.store import open_store

DIGITS = open_source("builtin:digits")


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrain") / "old"
    imgclf.train("builtin:digits", out=out, model="lenet5", epochs=3, img_size=16, flip=False, seed=0)
    return out


def split_rows(run) -> list[dict]:
    with open(run / "splits.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def shifted(path: str, mode: str = "L") -> bytes:
    """A digit moved one pixel right: the same class, but bytes no old image has (``mode`` "RGB":
    saved as a colour PNG, as a phone's screenshot of it would be)."""
    img = np.asarray(Image.open(io.BytesIO(DIGITS.read_bytes(path))))
    buf = io.BytesIO()
    Image.fromarray(np.roll(img, 1, axis=1)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def fill_store(folder, items: list[tuple[str, bytes]]) -> str:
    with open_store(folder) as store:
        for label, data in items:
            store.add_feedback(label, image=data, who="test")
    return str(folder)


@pytest.mark.slow
def test_corrections_and_new_images_train_and_both_models_are_scored(old_run, tmp_path):
    rows = split_rows(old_run)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    corrected = train[:5]  # the very bytes of old training images, with another label
    items = [(str((int(r["label"]) + 1) % 10), DIGITS.read_bytes(r["path"])) for r in corrected]
    items += [(r["label"], DIGITS.read_bytes(r["path"])) for r in test[:2]]  # flags on old test images
    items += [(r["label"], shifted(r["path"], "RGB")) for r in train[5:30]]  # new images, in colour unlike the digits
    store = fill_store(tmp_path / "store", items)

    result = imgclf.retrain(old_run, feedback=store, out=tmp_path / "new", epochs=1)
    new = tmp_path / "new"
    record = json.loads((new / "retrain.json").read_text())
    assert record == result.record and result.verdict in ("promote", "do-not-promote")
    assert record["data"] == {"feedback_images": 32, "trained_on": 24, "held_out": 8, "old_images_replaced": 5,
                              "old_labels_changed": 5, "old_test_images_held_out": 2, "old_images_kept": len(rows) - 5}  # fmt: skip
    for key, n in (("test", len(test)), ("feedback_held_out", 8), ("feedback_trained", 24)):
        assert record[key]["n"] == n, key
        assert 0 <= record[key]["old_accuracy"] <= 1 and 0 <= record[key]["new_accuracy"] <= 1, key
    assert record["feedback_scored"] == "held-out" and len(record["reasons"]) == 2

    new_rows = split_rows(new)
    assert [(r["path"], r["label"]) for r in new_rows if r["split"] == "test"] == [(r["path"], r["label"]) for r in test]
    assert {r["split"] for r in new_rows if r["path"].startswith("feedback:")} == {"train"}
    assert not {r["path"] for r in corrected} & {r["path"] for r in new_rows}  # replaced by their corrections
    fixes = {r["path"]: r["label"] for r in new_rows if r["path"].startswith("feedback:")}
    assert sorted(fixes.values()).count(str((int(corrected[0]["label"]) + 1) % 10)) >= 1

    config = yaml.safe_load((new / "config.yaml").read_text())
    assert config["data"] == str(new / "retrain" / "union.json") and (new / "retrain" / "feedback" / "manifest.csv").is_file()
    assert config["pretrained"] == str(old_run) and config["epochs"] == 1
    loaded = json.loads((new / "pretrained.json").read_text())
    assert "fc.weight" in loaded["loaded"] and loaded["initialised"] == []  # fine-tuned: the old head kept
    assert record["training"]["reinitialised_tensors"] == []
    assert read_meta(new / "model").preprocess == read_meta(old_run / "model").preprocess  # grey input kept despite colour feedback
    assert (new / "model" / "drift_baseline.json").is_file()
    assert read_meta(new / "model").classes == read_meta(old_run / "model").classes


@pytest.mark.slow
def test_feedback_that_wrecks_the_test_split_is_not_promoted_and_the_link_stays(old_run, tmp_path, capsys):
    """Wrong labels flooding one class: better on that feedback, much worse on the test split."""
    rows = split_rows(old_run)
    flood = [("7", shifted(r["path"])) for r in rows if r["split"] == "train" and r["label"] in "01234"]
    store = fill_store(tmp_path / "store", flood)
    link = point_link(tmp_path / "current", old_run)

    args = ["retrain", str(old_run), "--feedback", store, "--out", str(tmp_path / "new"), "--epochs", "1", "--promote", str(link)]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--strict"])
    assert exited.value.code == 1  # --strict: scripts can tell
    shown = capsys.readouterr().out
    assert "DO-NOT-PROMOTE" in shown and "not moved" in shown
    record = json.loads((tmp_path / "new" / "retrain.json").read_text())
    assert record["verdict"] == "do-not-promote" and record["promoted_link"] is None
    assert record["test"]["old_accuracy"] - record["test"]["new_accuracy"] > 0.005
    assert "more than the tolerance of 0.5" in record["reasons"][0]
    assert os.path.realpath(link) == os.path.realpath(old_run)


@pytest.mark.slow
def test_a_promoted_run_is_evaluated_like_the_old_one_and_the_link_moves(old_run, tmp_path):
    old = copy_run(old_run, tmp_path / "old")
    imgclf.evaluate(old, robustness=False, explain=False)
    rows = split_rows(old)
    store = fill_store(tmp_path / "store", [(r["label"], shifted(r["path"])) for r in rows if r["split"] == "train"][:60])
    link = point_link(tmp_path / "current", old)

    result = imgclf.retrain(old, feedback=store, out=tmp_path / "new", epochs=2, tolerance=100, promote=link)
    assert result.verdict == "promote", result.reasons
    assert result.promoted == link and os.path.realpath(link) == os.path.realpath(tmp_path / "new")
    assert os.readlink(link) == "new"
    assert result.record["promoted_link"] == str(link)
    meta = read_meta(tmp_path / "new" / "model")
    assert meta.unsure_evaluated  # what serving needs for its review queue, as the old run had
    assert (tmp_path / "new" / "eval" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_label_the_old_model_does_not_know_is_refused_before_training(old_run, tmp_path):
    store = fill_store(tmp_path / "store", [("seven-ish", shifted(split_rows(old_run)[0]["path"]))])
    with pytest.raises(UserError, match="--from-scratch"):
        imgclf.retrain(old_run, feedback=store, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_from_scratch_a_new_class_joins_and_only_the_new_model_can_answer_it(old_run, tmp_path):
    crosses = [("cross", encode(shape_image("cross", 24, seed=i), "PNG")) for i in range(40)]
    store = fill_store(tmp_path / "store", crosses)
    result = imgclf.retrain(old_run, feedback=store, out=tmp_path / "new", from_scratch=True, epochs=3, tolerance=100)
    classes = read_meta(tmp_path / "new" / "model").classes
    assert list(classes) == [*read_meta(old_run / "model").classes, "cross"]
    held = result.record["feedback_held_out"]
    assert held["n"] == 8 and held["old_accuracy"] == 0.0  # the old model has no such class
    assert result.record["test"]["n"] == len([r for r in split_rows(old_run) if r["split"] == "test"])
    assert result.record["training"]["from_scratch"] and not (tmp_path / "new" / "pretrained.json").exists()


def test_a_folder_that_is_no_feedback_is_refused(tmp_path, old_run_stub):
    (tmp_path / "random").mkdir()
    with pytest.raises(UserError, match="neither a feedback store"):
        imgclf.retrain(old_run_stub, feedback=tmp_path / "random", out=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_real_folder_at_the_promote_path_is_refused_before_anything_runs(tmp_path, old_run_stub):
    store = fill_store(tmp_path / "store", [("3", b"not even decoded yet")])
    (tmp_path / "current").mkdir()
    with pytest.raises(UserError, match="not a symbolic link"):
        imgclf.retrain(old_run_stub, feedback=store, out=tmp_path / "new", promote=tmp_path / "current")
    assert not (tmp_path / "new").exists() and (tmp_path / "current").is_dir()


@pytest.fixture
def old_run_stub(tmp_path):
    """A run directory as far as the checks before training look: config, splits and a bundle."""
    from imgclf.inference.bundle import save_bundle
    from imgclf.models import create_model

    run = tmp_path / "stub"
    save_bundle(create_model("lenet5", 10), run / "model", architecture="lenet5", classes=[str(i) for i in range(10)],
                preprocess={"img_size": 16})  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump({"data": "builtin:digits", "model": "lenet5", "img_size": 16}))
    (run / "splits.csv").write_text("path,label,split\n0/0000.png,0,train\n")
    return run
