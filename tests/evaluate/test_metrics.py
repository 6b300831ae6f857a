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
