"""Figures for the evaluation folder (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(matrix: list[list[int]], classes: list[str], path: Path, *, normalize: bool = False) -> None:
    cm = np.asarray(matrix, dtype=float)
    if normalize:
        cm = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
    n = len(classes)
    size = min(16, max(4.5, 0.55 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=110)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else " (counts)"))
    if n <= 25:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
