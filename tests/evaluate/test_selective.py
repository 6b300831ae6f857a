"""Selective prediction against a brute-force search with scikit-learn's accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from imgclf.evaluate.selective import (
    coverage_curve,
    selective_report,
    threshold_for_accuracy,
)


def predictions(n: int, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 1.0, n)
    if ties:
        conf = np.round(conf, 1)  # many equal confidences
    y = rng.integers(0, 3, n)
    # right more often when confident
    pred = np.where(rng.random(n) < conf, y, (y + 1) % 3)
    return conf, y, pred


def brute_force(conf, y, pred, target):
    best = None
    for t in np.unique(conf):
        keep = conf >= t
        acc = accuracy_score(y[keep], pred[keep])
        if acc >= target and (best is None or keep.mean() > best[1]):
            best = (t, keep.mean(), acc)
    return best


@pytest.mark.parametrize("ties", [False, True])
def test_curve_and_threshold_match_brute_force(ties):
    conf, y, pred = predictions(500, ties=ties)
    curve = coverage_curve(conf, pred == y)
    assert len(curve["threshold"]) == len(np.unique(conf))
    for t, cov, acc in zip(curve["threshold"], curve["coverage"], curve["accuracy"]):
        keep = conf >= t
        assert cov == pytest.approx(keep.mean())
        assert acc == pytest.approx(accuracy_score(y[keep], pred[keep]))
    assert curve["coverage"][-1] == 1.0 and curve["accuracy"][-1] == pytest.approx(accuracy_score(y, pred))
    for target in (0.7, 0.8, 0.9):
        got = threshold_for_accuracy(conf, pred == y, target)
        t, cov, acc = brute_force(conf, y, pred, target)
        assert got == pytest.approx({"threshold": t, "coverage": cov, "accuracy": acc})


def test_unreachable_target_gives_none():
    conf = np.array([0.9, 0.8, 0.7])
    assert threshold_for_accuracy(conf, np.array([False, True, True]), 0.99) is None
    expected = {"threshold": 0.9, "coverage": pytest.approx(1 / 3), "accuracy": 1.0}
    assert threshold_for_accuracy(conf, np.array([True, False, True]), 0.99) == expected


def test_threshold_chosen_on_validation_is_graded_on_test():
    conf_v, y_v, pred_v = predictions(400, seed=1)
    conf_t, y_t, pred_t = predictions(300, seed=2)
    rep = selective_report(conf_t, pred_t == y_t, 0.85, val_confidence=conf_v, val_correct=pred_v == y_v)
    u = rep["unsure_threshold"]
    t, cov_v, _ = brute_force(conf_v, y_v, pred_v, 0.85)
    assert u["chosen_on"] == "val" and u["threshold"] == t and u["chosen_on_coverage"] == pytest.approx(cov_v)
    keep = conf_t >= t
    assert u["coverage"] == pytest.approx(keep.mean())
    assert u["accuracy"] == pytest.approx(accuracy_score(y_t[keep], pred_t[keep]))
    # without validation data the test split chooses (and the report says so)
    assert selective_report(conf_t, pred_t == y_t, 0.85)["chosen_on"] == "test"
