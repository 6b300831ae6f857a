"""Label issues: plant flipped labels in a generated dataset and check that cross-validated
confident learning finds most of them and few others; and the `--splits` training option the
cross-validation folds are built on."""

from __future__ import annotations

import csv
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner
from synth import shape_image

import imgclf
from imgclf.cli import cli
from imgclf.errors import UserError
from imgclf.evaluate.label_issues import COLUMNS, find_label_issues

CLASSES = ("circle", "square", "triangle")


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def flipped(tmp_path_factory):
    """A manifest of 120 shape images (16 px for speed) with 10 labels flipped, and a run trained
    on it; returns (run, flipped paths)."""
    root = tmp_path_factory.mktemp("flipped")
    rng = np.random.default_rng(0)
    rows = []
    for c in CLASSES:
        for i in range(40):
            name = f"{c}_{i:03d}.png"
            shape_image(c, 32, seed=len(rows)).save(root / name)
            rows.append([name, c])
    flip = rng.choice(len(rows), 10, replace=False)
    for i in flip:
        rows[i][1] = CLASSES[(CLASSES.index(rows[i][1]) + 1 + rng.integers(2)) % 3]
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label"], *rows])
    run = root / "run"
    imgclf.train(root / "labels.csv", out=run, model="simple_cnn", epochs=1, img_size=16, batch_size=16, lr=3e-3, seed=0)
    return run, {rows[i][0] for i in flip}


@pytest.fixture(scope="module")
def found(flipped, tmp_path_factory):
    run, _ = flipped
    scratch = tmp_path_factory.mktemp("scratch")
    old = tempfile.tempdir
    tempfile.tempdir = str(scratch)  # to check that the fold runs are cleaned up
    try:
        rows = find_label_issues(run, folds=3, epochs=6)
    finally:
        tempfile.tempdir = old
    return rows, scratch


def test_most_planted_flips_are_found_and_few_others(flipped, found):
    run, flips = flipped
    rows, _ = found
    splits = {r["path"]: r["split"] for r in read_csv(run / "splits.csv")}
    checked = {p for p, s in splits.items() if s in ("train", "val")}
    planted = flips & checked  # flips that fell in the test split are not training images
    assert len(planted) >= 5
    flagged = {r["path"] for r in rows}
    assert flagged <= checked, "test images are never checked"
    recall = len(flagged & planted) / len(planted)
    precision = len(flagged & planted) / max(1, len(flagged))
    assert recall >= 0.8 and precision >= 0.7, (recall, precision, sorted(flagged), sorted(planted))


def test_csv_json_and_ranking(flipped, found):
    run, _ = flipped
    rows, scratch = found
    table = read_csv(run / "eval" / "label_issues.csv")
    with open(run / "eval" / "label_issues.csv", newline="") as fh:
        assert next(csv.reader(fh)) == COLUMNS
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    assert [int(r["rank"]) for r in table] == list(range(1, len(rows) + 1))
    given = [r["given_label_probability"] for r in rows]
    assert given == sorted(given), "ranked by self-confidence: least confident in the given label first"
    labels = {r["path"]: r["label"] for r in read_csv(run / "splits.csv")}
    for r in rows:
        assert r["given_label"] == labels[r["path"]] != r["suggested_label"]
        assert r["suggested_probability"] > r["given_label_probability"]
    import json

    report = json.loads((run / "eval" / "label_issues.json").read_text())
    assert report["folds"] == 3 and report["epochs"] == 6 and report["issues_found"] == len(rows)
    assert report["warning"] is None and report["out_of_sample_accuracy"] > 0.85
    assert report["images_checked"] == sum(1 for r in read_csv(run / "splits.csv") if r["split"] in ("train", "val"))
    assert not list(scratch.iterdir()), "the fold runs are deleted"
    assert not (run / "fold0").exists()


def test_cli_and_bad_arguments(flipped):
    run, _ = flipped
    args = ["data", "label-issues", str(run), "--folds", "2", "--epochs", "1", "--show", "3"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "suspected label issue(s)" in result.output and "label_issues.csv" in result.output
    with pytest.raises(UserError, match="--folds"):
        find_label_issues(run, folds=1)


def test_train_reuses_a_given_splits_csv(flipped, tmp_path):
    """`--splits`: train on exactly the split (and labels) of a splits.csv; unlisted images are left out."""
    run, _ = flipped
    given = read_csv(run / "splits.csv")
    mine = [dict(r, split="train" if i % 3 else "val") for i, r in enumerate(given[:60])]
    path = tmp_path / "my_splits.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(given[0]))
        w.writeheader()
        w.writerows(mine)
    res = imgclf.train(run / ".." / "labels.csv", out=tmp_path / "r", splits=str(path), epochs=1, img_size=16)
    written = read_csv(tmp_path / "r" / "splits.csv")
    assert [(r["path"], r["label"], r["split"]) for r in written] == [(r["path"], r["label"], r["split"]) for r in mine]
    assert res.split_sizes == {"train": 40, "val": 20, "test": 0}
    with pytest.raises(UserError, match="--splits"):
        imgclf.train(run / ".." / "labels.csv", out=tmp_path / "r2", splits=str(tmp_path / "missing.csv"))
