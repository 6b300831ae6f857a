"""Figures for the evaluation folder (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


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


def training_curves_png(records: list[dict], path: Path) -> bool:
    """Loss and accuracy per epoch from ``metrics.jsonl`` (train and validation); False when
    there is nothing to plot."""
    if not records:
        return False
    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{key}") for r in records]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def reliability_png(bins_before: list[dict], bins_after: list[dict], temperature: float, path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after temperature
    scaling (a calibrated model sits on the diagonal)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=110, sharey=True)
    for ax, bins, title in ((axes[0], bins_before, "before (T = 1)"), (axes[1], bins_after, f"after (T = {temperature:.3f})")):
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=1)
        if bins:
            width = bins[0]["upper"] - bins[0]["lower"]
            lefts = [b["lower"] for b in bins]
            ax.bar(lefts, [b["accuracy"] for b in bins], width=width, align="edge", edgecolor="k", alpha=0.75, label="accuracy")
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3", ms=3, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def coverage_png(curve: dict, unsure: dict | None, path: Path) -> None:
    """Accuracy of the answered images against coverage, with the chosen threshold marked."""
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    ax.plot(curve["coverage"], curve["accuracy"], "-", lw=1.5)
    if unsure is not None:
        ax.axhline(unsure["target_accuracy"], ls="--", color="gray", lw=1, label=f"target {unsure['target_accuracy']:.3g}")
        if unsure["accuracy"] is not None:
            ax.plot([unsure["coverage"]], [unsure["accuracy"]], "o", color="C3",
                    label=f"threshold {unsure['threshold']:.3f}: coverage {unsure['coverage']:.1%}")  # fmt: skip
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("accuracy of answered images")
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Selective prediction")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def gallery_png(images: list[np.ndarray], titles: list[str], path: Path, *, columns: int = 6, title: str = "") -> None:
    """A grid of HWC uint8 images with a caption under each (true / predicted labels, say)."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.15 * rows + (0.3 if title else 0)), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, caption in zip(axes.ravel(), images, titles):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def subgroups_png(result: dict, path: Path) -> None:
    """Accuracy per subgroup against the overall accuracy, flagged subgroups in red."""
    rows = result["groups"]
    fig, ax = plt.subplots(figsize=(6.5, max(2.0, 0.35 * len(rows) + 1.2)), dpi=110)
    names = [f"{r['group']} (n={r['n']})" for r in rows]
    colors = ["C3" if r["flagged"] else "C0" for r in rows]
    ax.barh(range(len(rows)), [r["accuracy"] for r in rows], color=colors)
    ax.axvline(result["overall"]["accuracy"], color="k", ls="--", lw=1, label="overall")
    ax.axvline(result["overall"]["accuracy"] - result["tolerance"], color="gray", ls=":", lw=1, label="tolerance")
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("accuracy")
    ax.set_title(f"Accuracy by {result['column']}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
