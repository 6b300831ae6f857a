"""Subgroups: per-group accuracy and macro recall against scikit-learn, and an end-to-end run
where one camera's images are degraded and must be flagged."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, recall_score

from imgclf.errors import UserError
from imgclf.evaluate.subgroups import MISSING, subgroup_metrics


def test_subgroup_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 4, n)
    groups = rng.choice(["north", "south", "east", None], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    # "east" is much worse than the rest
    p_right = np.where(np.array(groups, dtype=object) == "east", 0.5, 0.9)
    pred = np.where(rng.random(n) < p_right, y, (y + 1) % 4)
    res = subgroup_metrics(y, pred, groups, column="site", tolerance=0.05)
    assert res["overall"]["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert res["overall"]["macro_recall"] == pytest.approx(recall_score(y, pred, average="macro"))
    names = np.array([MISSING if g is None else g for g in groups])
    by_name = {r["group"]: r for r in res["groups"]}
    assert set(by_name) == {"north", "south", "east", MISSING}
    for name, row in by_name.items():
        m = names == name
        assert row["n"] == m.sum()
        assert row["accuracy"] == pytest.approx(accuracy_score(y[m], pred[m]))
        assert row["macro_recall"] == pytest.approx(recall_score(y[m], pred[m], average="macro", labels=sorted(set(y[m]))))
        assert row["accuracy_gap"] == pytest.approx(row["accuracy"] - accuracy_score(y, pred))
    assert res["flagged"] == ["east"] and by_name["east"]["flagged"]
    assert [r["n"] for r in res["groups"]] == sorted((r["n"] for r in res["groups"]), reverse=True)


def test_macro_recall_ignores_classes_a_subgroup_lacks():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    res = subgroup_metrics(y, pred, ["a", "a", "a", "a", "b", "b"], column="c")
    assert all(r["macro_recall"] == 1.0 and not r["flagged"] for r in res["groups"])


@pytest.fixture(scope="module")
def camera_manifest(tmp_path_factory, digits_run):
    """The digits run's test images as a manifest with a camera column; camera "dim" images are
    darkened and low-contrast, as from a poor camera."""
    from imgclf.data.sources import open_source

    root = tmp_path_factory.mktemp("cameras")
    (root / "images").mkdir()
    source = open_source("builtin:digits")
    with open(digits_run / "splits.csv", newline="") as fh:
        test = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    rows = []
    for i, r in enumerate(test):
        camera = ("good", "dim")[i % 2]
        img = Image.open(io.BytesIO(source.read_bytes(r["path"]))).convert("RGB")
        if camera == "dim":
            img = Image.fromarray((np.asarray(img) * 0.15 + 100).astype(np.uint8))
        name = f"images/{i:03d}.png"
        img.save(root / name)
        rows.append({"path": name, "label": r["label"], "camera": camera, "site": ""})
    manifest = root / "labels.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "camera", "site"])
        w.writeheader()
        w.writerows(rows)
    return manifest


def test_evaluate_group_by_flags_the_degraded_camera(digits_run_copy, camera_manifest):
    from imgclf.evaluate.evaluate import evaluate

    meta_before = json.loads((digits_run_copy / "model" / "model.json").read_text())
    res = evaluate(digits_run_copy, data=str(camera_manifest), group_by="camera", robustness=False, explain=False, precision="fp32")
    sg = res.metrics["subgroups"]
    assert sg["column"] == "camera" and res.metrics["n"] == 180
    by_name = {g["group"]: g for g in sg["groups"]}
    assert by_name["good"]["n"] == by_name["dim"]["n"] == 90
    assert sg["flagged"] == ["dim"] and by_name["dim"]["accuracy"] < by_name["good"]["accuracy"] - 0.1

    # the same figures from predictions.csv and the manifest, with scikit-learn
    with open(res.eval_dir / "predictions.csv", newline="") as fh:
        preds = {r["path"]: r for r in csv.DictReader(fh)}
    with open(camera_manifest, newline="") as fh:
        camera = {r["path"]: r["camera"] for r in csv.DictReader(fh)}
    for name in ("good", "dim"):
        rows = [p for path, p in preds.items() if camera[path] == name]
        y, yhat = [r["label"] for r in rows], [r["predicted"] for r in rows]
        assert by_name[name]["accuracy"] == pytest.approx(accuracy_score(y, yhat))
        assert by_name[name]["macro_recall"] == pytest.approx(recall_score(y, yhat, average="macro", labels=sorted(set(y))))
    with open(res.eval_dir / "subgroups.csv", newline="") as fh:
        table = {r["group"]: r for r in csv.DictReader(fh)}
    assert table["dim"]["flagged"] == "1" and table["good"]["flagged"] == "0"
    assert (res.eval_dir / "subgroups.png").stat().st_size > 1000
    card = res.model_card.read_text()
    assert "Subgroups (by `camera`)" in card and "camera = dim" in card  # a known failure mode

    # New data without a validation split: the stored temperature is not refitted on it.
    meta_after = json.loads((digits_run_copy / "model" / "model.json").read_text())
    assert meta_after["temperature"] == meta_before["temperature"]
    assert meta_after.get("unsure_threshold") == meta_before.get("unsure_threshold")
    assert res.metrics["calibration"]["fitted_on"] is None

    # A column that is not there, or one with no values: one clear sentence each.
    with pytest.raises(UserError, match="no such column.*camera, site"):
        evaluate(digits_run_copy, data=str(camera_manifest), group_by="lens", robustness=False, explain=False)
    with pytest.raises(UserError, match="no test image has a value"):
        evaluate(digits_run_copy, data=str(camera_manifest), group_by="site", robustness=False, explain=False)
