"""`imgclf evaluate` end to end on the shared digits run: every number checked against
scikit-learn on predictions made independently of the evaluation code (the images decoded again,
logits from the Predictor in fp32)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from runcopy import copy_run
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

import imgclf
from imgclf.cli import cli, main
from imgclf.data.sources import open_source
from imgclf.errors import UserError
from imgclf.evaluate.evaluate import evaluate
from imgclf.inference.forward import softmax


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def evaluated(digits_run, tmp_path_factory):
    run = copy_run(digits_run, tmp_path_factory.mktemp("evaluated") / "run")
    res = evaluate(run, tta=True, precision="fp32", robustness=False, explain=False, target_accuracy=0.99)
    return run, res


@pytest.fixture(scope="module")
def independent(evaluated):
    """Labels and raw logits (without TTA and with flips) of the test and validation images,
    decoded straight from the source by the model's preprocessing."""
    run, _ = evaluated
    predictor = imgclf.load(run, precision="fp32")
    source = open_source("builtin:digits")
    rows = read_csv(run / "splits.csv")
    out = {}
    for split in ("test", "val"):
        part = [r for r in rows if r["split"] == split]
        pixels = torch.from_numpy(np.stack([predictor.preprocess.load(source.read_bytes(r["path"])) for r in part]))
        out[split] = {
            "paths": [r["path"] for r in part],
            "y": np.array([predictor.classes.index(r["label"]) for r in part]),
            "none": predictor.batch_logits([pixels], tta="none"),
            "flip": predictor.batch_logits([pixels], tta="flip"),
        }
    return out


def ece(probs, y, n_bins=15):
    conf, correct = probs.max(1), (probs.argmax(1) == y).astype(int)
    frac, mean_conf = calibration_curve(correct, conf, n_bins=n_bins)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], conf), minlength=n_bins)
    return float(np.sum(counts[counts > 0] / len(y) * np.abs(frac - mean_conf)))


def test_metrics_match_scikit_learn(evaluated, independent):
    run, res = evaluated
    m, t = res.metrics, independent["test"]
    temperature = json.loads((run / "model" / "model.json").read_text())["temperature"]
    probs = softmax(t["flip"], temperature)  # --tta on a model without TTA of its own: flips
    y, pred = t["y"], probs.argmax(1)
    assert m["n"] == len(y) == 180 and m["tta"] == "flip"
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for k in (3, 5):
        assert m[f"top{k}_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=k))
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert (m[f"{avg}_precision"], m[f"{avg}_recall"], m[f"{avg}_f1"]) == pytest.approx((p, r, f))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs, labels=range(10)), abs=1e-4)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    lo, hi = m["accuracy_ci95"]
    assert lo < m["accuracy"] <= hi

    ev = res.eval_dir
    counts = [[int(v) for v in row[1:]] for row in read_rows(ev / "confusion_matrix.csv")[1:]]
    rates = [[float(v) for v in row[1:]] for row in read_rows(ev / "confusion_matrix_normalized.csv")[1:]]
    assert counts == skm.confusion_matrix(y, pred).tolist()
    assert np.allclose(rates, skm.confusion_matrix(y, pred, normalize="true"), atol=1e-6)
    per_class = read_csv(ev / "per_class.csv")
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, zero_division=0)
    assert [float(x["recall"]) for x in per_class] == pytest.approx(r.tolist(), abs=1e-6)
    assert [float(x["precision"]) for x in per_class] == pytest.approx(p.tolist(), abs=1e-6)
    assert [int(x["support"]) for x in per_class] == s.tolist()
    preds = read_csv(ev / "predictions.csv")
    assert [x["path"] for x in preds] == t["paths"]
    assert [int(x["predicted"]) for x in preds] == pred.tolist()
    assert "macro avg" in (ev / "classification_report.txt").read_text()

    # The most confused pairs are the largest off-diagonal cells.
    cm = skm.confusion_matrix(y, pred)
    np.fill_diagonal(cm, 0)
    confused = read_csv(ev / "most_confused.csv")
    assert sum(int(c["count"]) for c in confused) == cm.sum()  # digits: fewer than 10 such cells
    if confused:
        assert int(confused[0]["count"]) == cm.max()


def test_temperature_is_fitted_on_validation_and_stored(evaluated, independent):
    run, res = evaluated
    meta = json.loads((run / "model" / "model.json").read_text())
    cal = res.metrics["calibration"]
    t, v = independent["test"], independent["val"]
    assert cal["fitted_on"] == "val" and cal["fitted_on_n"] == len(v["y"]) == 180
    assert meta["temperature"] == pytest.approx(cal["temperature"]) and meta["temperature"] != 1.0
    # It minimises the validation log loss (the model predicts without TTA: those logits).
    best = skm.log_loss(v["y"], softmax(v["none"], meta["temperature"]), labels=range(10))
    for other in (0.9, 1.1):
        assert best < skm.log_loss(v["y"], softmax(v["none"], meta["temperature"] * other), labels=range(10))
    assert cal["ece_before"] == pytest.approx(ece(softmax(t["none"]), t["y"]), abs=1e-5)
    assert cal["ece_after"] == pytest.approx(ece(softmax(t["none"], meta["temperature"]), t["y"]), abs=1e-5)
    assert Image.open(res.eval_dir / "reliability.png").size[0] > 300


def test_unsure_threshold_reaches_the_target_on_validation(evaluated, independent):
    run, res = evaluated
    meta = json.loads((run / "model" / "model.json").read_text())
    u = meta["unsure_threshold"]
    assert set(u) == {"threshold", "target_accuracy", "coverage"} and u["target_accuracy"] == 0.99
    v, t = independent["val"], independent["test"]
    pv = softmax(v["none"], meta["temperature"])
    conf, correct = pv.max(1), pv.argmax(1) == v["y"]
    assert skm.accuracy_score(v["y"][conf >= u["threshold"]], pv.argmax(1)[conf >= u["threshold"]]) >= 0.99
    # the next lower confidence would miss the target: the threshold answers as much as it can
    lower = conf[conf < u["threshold"] - 1e-6]
    if len(lower):
        keep = conf >= lower.max()
        assert correct[keep].mean() < 0.99
    pt = softmax(t["none"], meta["temperature"])
    assert u["coverage"] == pytest.approx((pt.max(1) >= u["threshold"]).mean(), abs=1 / 180 + 1e-9)
    rows = read_csv(res.eval_dir / "selective.csv")
    assert float(rows[-1]["coverage"]) == 1.0
    assert float(rows[-1]["accuracy"]) == pytest.approx(skm.accuracy_score(t["y"], pt.argmax(1)), abs=1e-6)


def test_tta_effect_is_reported(evaluated, independent):
    _, res = evaluated
    e, t = res.metrics["tta_effect"], independent["test"]
    a, b = t["none"].argmax(1), t["flip"].argmax(1)
    assert e["mode"] == "flip"
    assert e["accuracy_without"] == pytest.approx(skm.accuracy_score(t["y"], a))
    assert e["accuracy_with"] == pytest.approx(skm.accuracy_score(t["y"], b))
    assert e["changed"] == int((a != b).sum())


def test_galleries_and_curves(evaluated):
    _, res = evaluated
    ev = res.eval_dir
    preds = read_csv(ev / "predictions.csv")
    top = read_csv(ev / "top_losses.csv")
    worst = sorted(preds, key=lambda r: -float(r["loss"]))[: len(top)]
    assert [float(r["loss"]) for r in top] == pytest.approx([float(r["loss"]) for r in worst], abs=1e-5)
    assert all(float(r["loss"]) == pytest.approx(-np.log(float(r["true_probability"])), abs=1e-4) for r in top)
    for name in ("confusion_matrix.png", "confusion_matrix_normalized.png", "training_curves.png", "selective.png", "top_losses.png"):
        with Image.open(ev / name) as img:
            assert img.size[0] > 300 and img.getextrema()[0] != img.getextrema()[0][::-1]  # not blank


def test_predict_returns_the_calibrated_probabilities(evaluated, independent):
    run, _ = evaluated
    t = independent["test"]
    predictor = imgclf.load(run, precision="fp32")
    source = open_source("builtin:digits")
    got = predictor.predict([(p, source.read_bytes(p)) for p in t["paths"][:4]])
    expected = softmax(t["none"][:4], predictor.temperature).max(1)
    assert [g.probability for g in got] == pytest.approx(expected.tolist(), abs=1e-5)


def test_bad_options_are_one_sentence(evaluated, tmp_path, capsys):
    run, _ = evaluated
    with pytest.raises(UserError, match="target-accuracy"):
        evaluate(run, target_accuracy=0)
    with pytest.raises(UserError, match="unknown TTA mode"):
        evaluate(run, tta="sideways")
    with pytest.raises(UserError, match="no metadata columns"):
        evaluate(run, group_by="camera")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(run), "--group-by", "camera"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: --group-by camera") and len(err.strip().splitlines()) == 1


def test_cli_prints_the_summary(digits_run, tmp_path):
    run = copy_run(digits_run, tmp_path / "run")
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--no-robustness", "--no-explain", "--target-accuracy", "0.95"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "calibration  temperature" in out and "unsure       below confidence" in out
    assert "robustness   not run (--no-robustness)" in out
    assert f"Report: {run / 'eval' / 'report.html'}" in out and (run / "model_card.md").exists()
    assert json.loads((run / "model" / "model.json").read_text())["unsure_threshold"]["target_accuracy"] == 0.95
