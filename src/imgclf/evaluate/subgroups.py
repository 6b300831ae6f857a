"""Subgroup performance: does the model work as well for every camera, site or session?

Accuracy and macro recall are computed per value of a metadata column and compared with the
figures over all images; a subgroup that falls more than a tolerance below either is flagged.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.metrics import accuracy_score, recall_score

MISSING = "(missing)"
# Below this many images a subgroup's figures swing by several points on one image: say so.
FEW_SAMPLES = 20


def _macro_recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # Averaged over the classes present in these images: a subgroup without class c says nothing
    # about recall on c, and counting it as 0 would flag every subgroup missing a class.
    present = sorted(set(y_true.tolist()))
    return float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def subgroup_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: list[str | None],
    *,
    column: str,
    tolerance: float = 0.05,
) -> dict:
    """Per-subgroup accuracy and macro recall, their gaps to the overall figures, and flags.

    A subgroup is flagged when its accuracy or its macro recall is more than ``tolerance``
    (absolute) below the figure over all images.
    """
    names = [MISSING if g in (None, "") else str(g) for g in groups]
    overall = {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_recall": _macro_recall(y_true, y_pred)}
    rows = []
    for name, n in sorted(Counter(names).items(), key=lambda kv: (-kv[1], kv[0])):
        idx = np.array([i for i, g in enumerate(names) if g == name])
        acc = float(accuracy_score(y_true[idx], y_pred[idx]))
        rec = _macro_recall(y_true[idx], y_pred[idx])
        gap_acc, gap_rec = acc - overall["accuracy"], rec - overall["macro_recall"]
        rows.append({
            "group": name,
            "n": int(n),
            "accuracy": acc,
            "macro_recall": rec,
            "accuracy_gap": gap_acc,
            "macro_recall_gap": gap_rec,
            "flagged": bool(gap_acc < -tolerance or gap_rec < -tolerance),
            "few_samples": bool(n < FEW_SAMPLES),
        })  # fmt: skip
    return {
        "column": column,
        "tolerance": tolerance,
        "n": len(y_true),
        "overall": overall,
        "groups": rows,
        "flagged": [r["group"] for r in rows if r["flagged"]],
    }
