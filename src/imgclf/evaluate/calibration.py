"""Calibration: how far the model's confidence is from its accuracy, and temperature scaling.

A model that says "90% sure" should be right nine times in ten. The expected calibration error
(ECE) measures the gap over confidence bins; temperature scaling (Guo et al., 2017) divides the
logits by one scalar T fitted on held-out data, which fixes most of the gap without changing a
single prediction (argmax is unchanged by a positive scale).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from ..inference.forward import softmax

# T is searched on a log scale within these bounds: below 0.05 or above 20 the model is either
# degenerate or the validation split is too small to say anything.
T_BOUNDS = (0.05, 20.0)


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each non-empty bin.

    A prediction's confidence is its top probability. Bin edges are those of scikit-learn's
    ``calibration_curve(strategy="uniform")``: bin i holds confidences in (edge_i, edge_i+1].
    """
    confidence = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], confidence)
    out = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            out.append({
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()),
                "accuracy": float(correct[mask].mean()),
            })  # fmt: skip
    return out


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean of |accuracy - confidence| over :func:`reliability_bins`."""
    n = len(y_true)
    if n == 0:
        return 0.0
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(probs, y_true, n_bins)))


def nll(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits / temperature)``."""
    logp = log_softmax(logits.astype(np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y_true)), y_true].mean())


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` on ``y_true``.

    The NLL is convex in 1/T, so a bounded one-dimensional search on log T finds the optimum.
    """
    if len(y_true) == 0:
        raise ValueError("cannot fit a temperature on no samples")
    lo, hi = np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])
    res = minimize_scalar(lambda t: nll(logits, y_true, float(np.exp(t))), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-5})  # fmt: skip
    return float(np.exp(res.x))


def calibration_report(
    val_logits: np.ndarray | None,
    val_labels: np.ndarray | None,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    *,
    previous_temperature: float = 1.0,
    n_bins: int = 15,
) -> dict:
    """Fit T on the validation logits (when there are any) and measure ECE and NLL on the test
    logits before (T = 1) and after. Without validation data the previous temperature is kept:
    fitting on the test split would grade the calibration on the data it was tuned on."""
    fitted = val_logits is not None and val_labels is not None and len(val_labels) > 0
    t = fit_temperature(val_logits, val_labels) if fitted else previous_temperature
    before, after = softmax(test_logits, 1.0), softmax(test_logits, t)
    return {
        "temperature": t,
        "fitted_on": "val" if fitted else None,
        "fitted_on_n": len(val_labels) if fitted else 0,
        "previous_temperature": previous_temperature,
        "n_bins": n_bins,
        "ece_before": expected_calibration_error(before, test_labels, n_bins),
        "ece_after": expected_calibration_error(after, test_labels, n_bins),
        "nll_before": nll(test_logits, test_labels, 1.0),
        "nll_after": nll(test_logits, test_labels, t),
        "bins_before": reliability_bins(before, test_labels, n_bins),
        "bins_after": reliability_bins(after, test_labels, n_bins),
    }
