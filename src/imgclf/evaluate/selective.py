"""Selective prediction: answer only when confident, route the rest to a person.

Sorting predictions by confidence and keeping the top fraction traces accuracy against coverage
(the share of images the model answers). The threshold for a target accuracy is chosen on the
validation split and then checked on the test split, so the stored figure is an honest estimate.
"""

from __future__ import annotations

import numpy as np


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> dict:
    """Accuracy of the answered images when only those at or above each confidence are answered.

    Returns parallel lists ``threshold``, ``coverage``, ``accuracy``, one entry per distinct
    confidence, from the most confident (lowest coverage) to all images answered.
    """
    n = len(confidence)
    if n == 0:
        return {"threshold": [], "coverage": [], "accuracy": []}
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(float)
    cum = np.cumsum(hits) / np.arange(1, n + 1)
    # Ties share one threshold: "answer if confidence >= t" keeps all of them or none.
    ends = np.flatnonzero(np.r_[conf[1:] != conf[:-1], True])
    return {
        "threshold": conf[ends].astype(float).tolist(),
        "coverage": ((ends + 1) / n).tolist(),
        "accuracy": cum[ends].astype(float).tolist(),
    }


def threshold_for_accuracy(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict | None:
    """The lowest confidence threshold whose answered images reach ``target`` accuracy (so the
    largest coverage that does), or None when no threshold reaches it."""
    curve = coverage_curve(confidence, correct)
    ok = [i for i, a in enumerate(curve["accuracy"]) if a >= target]
    if not ok:
        return None
    i = ok[-1]  # coverage grows along the curve: the last qualifying point answers the most
    return {"threshold": curve["threshold"][i], "coverage": curve["coverage"][i], "accuracy": curve["accuracy"][i]}


def at_threshold(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    """Coverage and accuracy when images with confidence >= ``threshold`` are answered."""
    answered = confidence >= threshold
    n = int(answered.sum())
    return {
        "coverage": float(answered.mean()) if len(answered) else 0.0,
        "accuracy": float(correct[answered].mean()) if n else None,
        "answered": n,
        "referred": int(len(answered) - n),
    }


def selective_report(
    test_confidence: np.ndarray,
    test_correct: np.ndarray,
    target_accuracy: float,
    *,
    val_confidence: np.ndarray | None = None,
    val_correct: np.ndarray | None = None,
) -> dict:
    """The accuracy-coverage curve on the test split and the threshold for ``target_accuracy``
    (chosen on the validation split when there is one), with what it achieves on the test split.

    ``unsure_threshold`` is what goes into ``model.json`` for the service's "unsure" flag.
    """
    use_val = val_confidence is not None and val_correct is not None and len(val_correct) > 0
    conf, corr = (val_confidence, val_correct) if use_val else (test_confidence, test_correct)
    chosen = threshold_for_accuracy(conf, corr, target_accuracy)
    unsure = None
    if chosen is not None:
        test = at_threshold(test_confidence, test_correct, chosen["threshold"])
        unsure = {
            "threshold": chosen["threshold"],
            "target_accuracy": target_accuracy,
            "coverage": test["coverage"],  # on the evaluated (test) split
            "accuracy": test["accuracy"],
            "chosen_on": "val" if use_val else "test",
            "chosen_on_coverage": chosen["coverage"],
            "chosen_on_accuracy": chosen["accuracy"],
        }
    return {
        "target_accuracy": target_accuracy,
        "chosen_on": "val" if use_val else "test",
        "unsure_threshold": unsure,
        "curve": coverage_curve(test_confidence, test_correct),
    }
