"""Classification metrics from labels and probabilities, computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    log_loss,
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
        "n": len(y_true),
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
    out["log_loss"] = float(log_loss(y_true, probs, labels=labels)) if len(y_true) else 0.0
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["most_confused"] = most_confused(out["confusion_matrix"], classes)
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


def most_confused(matrix: list[list[int]], classes: list[str], top: int = 10) -> list[dict]:
    """The off-diagonal cells of a confusion matrix with the most images, largest first.

    ``rate`` is the share of the true class's images that went to the predicted class.
    """
    cm = np.asarray(matrix)
    support = cm.sum(axis=1)
    cells = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], -c[0] / max(1, support[c[1]]), c[1], c[2]))
    return [
        {"true": classes[i], "predicted": classes[j], "count": n, "rate": float(n / support[i])}
        for n, i, j in cells[:top]
    ]


def per_sample_loss(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample's true label (the terms whose mean is the log loss)."""
    eps = np.finfo(np.float64).eps  # scikit-learn's log_loss clips the same way
    p = np.clip(probs[np.arange(len(y_true)), y_true].astype(np.float64), eps, 1.0)
    return -np.log(p)


def tta_effect(y_true: np.ndarray, probs_plain: np.ndarray, probs_tta: np.ndarray, mode: str) -> dict:
    """What test-time augmentation changed: accuracy and log loss with and without it, and how
    many predictions it fixed or broke."""
    labels = list(range(probs_plain.shape[1]))
    plain, tta = probs_plain.argmax(1), probs_tta.argmax(1)
    return {
        "mode": mode,
        "accuracy_without": float(accuracy_score(y_true, plain)),
        "accuracy_with": float(accuracy_score(y_true, tta)),
        "log_loss_without": float(log_loss(y_true, probs_plain, labels=labels)),
        "log_loss_with": float(log_loss(y_true, probs_tta, labels=labels)),
        "changed": int((plain != tta).sum()),
        "fixed": int(((plain != y_true) & (tta == y_true)).sum()),
        "broken": int(((plain == y_true) & (tta != y_true)).sum()),
    }


def accuracy_interval(correct: int, n: int, z: float = 1.959964) -> list[float]:
    """95% Wilson score interval for an accuracy of ``correct`` out of ``n``: how much the figure
    could move on another test set of the same size (wide for small test sets)."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]
