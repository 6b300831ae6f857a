"""Image galleries for the report: the highest-loss test images, Grad-CAM on misclassified ones,
and suspected label issues. Each writes a PNG grid (and, for the top losses, a CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.dataset import Split
from ..data.decode import DecodeError
from ..runs import write_csv
from .metrics import per_sample_loss
from .plots import gallery_png


def _pixels(part: Split, idx: np.ndarray) -> np.ndarray:
    return np.asarray(part.pixels[part.rows[idx]])


def top_losses(part: Split, probs: np.ndarray, classes: list[str], out: Path, *, count: int = 18) -> list[dict]:
    """The ``count`` test images the model got most wrong (highest cross-entropy on the true
    label): ``top_losses.csv`` and ``top_losses.png``. Returns the rows, worst first."""
    y = part.labels
    loss = per_sample_loss(y, probs)
    idx = np.argsort(-loss, kind="stable")[: min(count, len(y))]
    pred = probs.argmax(1)
    rows = [
        {
            "path": part.samples[i].path,
            "label": classes[y[i]],
            "predicted": classes[pred[i]],
            "probability": float(probs[i, pred[i]]),
            "true_probability": float(probs[i, y[i]]),
            "loss": float(loss[i]),
        }
        for i in idx
    ]
    write_csv(out / "top_losses.csv", [list(rows[0]) if rows else ["path"]] + [list(r.values()) for r in rows])
    if rows:
        captions = [f"true {r['label']}\npred {r['predicted']} ({r['probability']:.2f})" for r in rows]
        gallery_png(list(_pixels(part, idx)), captions, out / "top_losses.png", title="Highest-loss test images")
    return rows


def gradcam_misclassified(predictor, part: Split, probs: np.ndarray, out: Path, *, count: int = 8) -> int:
    """Grad-CAM overlays for the predicted class of up to ``count`` misclassified test images
    (most confidently wrong first): ``gradcam_misclassified.png``. Returns how many were drawn.

    Imports the Grad-CAM module lazily: it needs the optional pytorch-grad-cam package.
    """
    from .explain import gradcam, overlay

    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != part.labels)
    if not len(wrong):
        return 0
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:count]
    pixels = _pixels(part, wrong)
    heat = gradcam(predictor, pixels, classes=[int(pred[i]) for i in wrong])
    images = [overlay(px, h) for px, h in zip(pixels, heat)]
    classes = predictor.classes
    captions = [f"true {classes[part.labels[i]]}\npred {classes[pred[i]]} ({probs[i, pred[i]]:.2f})" for i in wrong]
    gallery_png(images, captions, out / "gradcam_misclassified.png", title="Grad-CAM: where the model looked (predicted class)")
    return len(images)


def label_issue_gallery(issues: list[dict], source, preprocess, out: Path, *, count: int = 12) -> int:
    """Thumbnails of the most suspicious label issues with given and suggested labels:
    ``label_issues.png``. Images that cannot be read any more are left out."""
    images, captions = [], []
    for row in issues:
        if len(images) == count:
            break
        try:
            images.append(preprocess.load(source.read_bytes(row["path"])))
        except (OSError, KeyError, DecodeError):  # a moved or broken file only drops its thumbnail
            continue
        p = float(row.get("given_label_probability") or 0.0)
        captions.append(f"given {row['given_label']} ({p:.2f})\nsuggested {row['suggested_label']}")
    if images:
        gallery_png(images, captions, out / "label_issues.png", title="Suspected label issues (most suspicious first)")
    return len(images)
