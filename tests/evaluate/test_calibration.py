"""Calibration: ECE against scikit-learn's calibration curve, temperature scaling against a known
temperature and scikit-learn's log loss."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss

from imgclf.evaluate.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from imgclf.inference.forward import softmax


def sampled(n: int, k: int, seed: int = 0):
    """Logits, and labels drawn from softmax(logits): perfectly calibrated at T = 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.5, size=(n, k))
    p = softmax(logits)
    y = np.array([rng.choice(k, p=row) for row in p])
    return logits, y


def ece_with_scikit_learn(probs: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    conf = probs.max(1)
    correct = (probs.argmax(1) == y).astype(int)
    frac_correct, mean_conf = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], conf), minlength=n_bins)
    counts = counts[counts > 0]  # calibration_curve returns the non-empty bins only, in order
    return float(np.sum(counts / len(y) * np.abs(frac_correct - mean_conf)))


@pytest.mark.parametrize("n_bins", [10, 15])
def test_ece_matches_scikit_learn_calibration_curve(n_bins):
    logits, y = sampled(2000, 6)
    for t in (0.4, 1.0, 3.0):
        probs = softmax(logits, t)
        assert expected_calibration_error(probs, y, n_bins) == pytest.approx(ece_with_scikit_learn(probs, y, n_bins))
    bins = reliability_bins(softmax(logits), y, n_bins)
    assert sum(b["count"] for b in bins) == 2000
    assert all(b["lower"] < b["confidence"] <= b["upper"] for b in bins)


def test_temperature_recovers_the_overconfidence_it_undoes():
    logits, y = sampled(4000, 5, seed=1)
    # A model that is 2.5x too confident: its logits are the calibrated ones scaled up.
    t = fit_temperature(2.5 * logits, y)
    assert t == pytest.approx(2.5, rel=0.1)
    # The fitted T minimises the log loss (scikit-learn's) of the scaled probabilities.
    best = log_loss(y, softmax(2.5 * logits, t), labels=range(5))
    for other in (t * 0.9, t * 1.1, 1.0):
        assert best < log_loss(y, softmax(2.5 * logits, other), labels=range(5))


def test_report_fits_on_validation_and_grades_on_test():
    logits, y = sampled(3000, 4, seed=2)
    val, test = slice(0, 1500), slice(1500, 3000)
    over = 3.0 * logits
    rep = calibration_report(over[val], y[val], over[test], y[test])
    assert rep["fitted_on"] == "val" and rep["fitted_on_n"] == 1500
    assert rep["temperature"] == pytest.approx(fit_temperature(over[val], y[val]))
    assert rep["ece_before"] == pytest.approx(ece_with_scikit_learn(softmax(over[test]), y[test], 15))
    assert rep["ece_after"] == pytest.approx(ece_with_scikit_learn(softmax(over[test], rep["temperature"]), y[test], 15))
    assert rep["nll_after"] == pytest.approx(log_loss(y[test], softmax(over[test], rep["temperature"]), labels=range(4)))
    assert rep["ece_after"] < rep["ece_before"] / 2

    # No validation data: the previous temperature is kept, never fitted on the graded split.
    kept = calibration_report(None, None, over[test], y[test], previous_temperature=1.7)
    assert kept["fitted_on"] is None and kept["temperature"] == 1.7
    assert kept["ece_after"] == pytest.approx(ece_with_scikit_learn(softmax(over[test], 1.7), y[test], 15))
