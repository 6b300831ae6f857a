"""Classification metrics from labels and probabilities, computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, top-k, macro/micro/weighted precision-recall-F1, per-class report, confusion matrix.

    ``probs`` has one column per class in ``classes`` order; ``y_true`` holds class indices.
    """
    labels = list(range(len(classes)))
    y_pred = probs.argmax(1)
    out: dict = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    for k in (3, 5):
        if k < len(classes):
            out[f"top{k}_accuracy"] = float(top_k_accuracy_score(y_true, probs, k=k, labels=labels))
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out[f"{average}_precision"], out[f"{average}_recall"], out[f"{average}_f1"] = float(p), float(r), float(f)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = [
        {"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    ]
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["classification_report"] = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, digits=4, zero_division=0
    )
    if len(classes) == 2:
        # Binary problems: the positive class is the second one in the (sorted) class list.
        p1, r1, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=[1], average=None, zero_division=0)
        tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
        out["binary"] = {
            "positive_class": classes[1],
            "precision": float(p1[0]),
            "recall": float(r1[0]),  # sensitivity
            "f1": float(f1[0]),
            "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
            "true_positives": int(tp), "false_positives": int(fp), "true_negatives": int(tn), "false_negatives": int(fn),
        }  # fmt: skip
        if len(set(y_true.tolist())) == 2:  # both classes present: threshold-free scores
            out["roc_auc"] = float(roc_auc_score(y_true, probs[:, 1]))
            out["binary"]["roc_auc"] = out["roc_auc"]
            out["binary"]["average_precision"] = float(average_precision_score(y_true, probs[:, 1]))
    return out
