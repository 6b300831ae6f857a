"""Evaluation metrics against scikit-learn on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from imgclf.evaluate.metrics import classification_metrics


def random_predictions(n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * (rng.random(n) < 0.7)[:, None]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_multiclass_metrics_match_scikit_learn():
    y, probs = random_predictions(300, 6)
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, [f"c{i}" for i in range(6)])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["top3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=3))
    assert m["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=5))
    for avg in ("macro", "micro", "weighted"):
        assert m[f"{avg}_f1"] == pytest.approx(skm.f1_score(y, pred, average=avg))
        assert m[f"{avg}_precision"] == pytest.approx(skm.precision_score(y, pred, average=avg, zero_division=0))
        assert m[f"{avg}_recall"] == pytest.approx(skm.recall_score(y, pred, average=avg))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    recalls = skm.recall_score(y, pred, average=None)
    assert [r["recall"] for r in m["per_class"]] == pytest.approx(recalls.tolist())
    assert "binary" not in m


def test_binary_metrics_match_scikit_learn():
    y, probs = random_predictions(200, 2, seed=1)
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, ["healthy", "sick"])
    b = m["binary"]
    assert b["positive_class"] == "sick"
    assert b["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert b["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert b["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert b["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]))
    assert b["average_precision"] == pytest.approx(skm.average_precision_score(y, probs[:, 1]))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert b["specificity"] == pytest.approx(tn / (tn + fp)) and b["true_positives"] == tp


def test_log_loss_most_confused_and_per_sample_loss_match_scikit_learn():
    from imgclf.evaluate.metrics import most_confused, per_sample_loss

    y, probs = random_predictions(400, 5, seed=2)
    classes = [f"c{i}" for i in range(5)]
    m = classification_metrics(y, probs, classes)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs))
    losses = per_sample_loss(y, probs)
    assert losses.mean() == pytest.approx(skm.log_loss(y, probs))
    assert losses[7] == pytest.approx(skm.log_loss([y[7]], probs[7:8], labels=range(5)))

    cm = skm.confusion_matrix(y, probs.argmax(1))
    off = [(cm[i, j], i, j) for i in range(5) for j in range(5) if i != j and cm[i, j]]
    pairs = m["most_confused"]
    assert pairs == most_confused(cm.tolist(), classes)
    assert len(pairs) == min(10, len(off))
    assert [p["count"] for p in pairs] == sorted((c for c, _, _ in off), reverse=True)[:10]
    top = pairs[0]
    i, j = classes.index(top["true"]), classes.index(top["predicted"])
    assert top["count"] == cm[i, j] == max(c for c, _, _ in off)
    assert top["rate"] == pytest.approx(skm.confusion_matrix(y, probs.argmax(1), normalize="true")[i, j])


def test_accuracy_interval_is_the_wilson_interval():
    from scipy.stats import binomtest

    from imgclf.evaluate.metrics import accuracy_interval

    for k, n in ((178, 180), (50, 100), (0, 12), (12, 12)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert accuracy_interval(k, n) == pytest.approx([ci.low, ci.high], abs=1e-6)


def test_tta_effect_counts_fixed_and_broken_predictions():
    from imgclf.evaluate.metrics import tta_effect

    y, plain = random_predictions(300, 4, seed=3)
    _, other = random_predictions(300, 4, seed=4)
    with_tta = 0.5 * (plain + other)
    t = tta_effect(y, plain, with_tta, "flip")
    a, b = plain.argmax(1), with_tta.argmax(1)
    assert t["accuracy_without"] == pytest.approx(skm.accuracy_score(y, a))
    assert t["accuracy_with"] == pytest.approx(skm.accuracy_score(y, b))
    assert t["log_loss_with"] == pytest.approx(skm.log_loss(y, with_tta))
    assert t["changed"] == (a != b).sum() > 0
    # accuracy changes by exactly (fixed - broken) images
    assert t["fixed"] - t["broken"] == (b == y).sum() - (a == y).sum()
