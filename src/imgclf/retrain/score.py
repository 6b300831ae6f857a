"""Old and new model on the same images, and the verdict: promote the new one, or not.

Both models answer for the same decoded pixels (decoded once per preprocessing through the
cache); answers are compared as class names, so a new model with an extra class is graded
fairly. The rule (``tolerance`` in accuracy points):

- test: the new model's accuracy on the old run's test split may be at most ``tolerance`` points
  below the old model's (a promotion never makes test accuracy worse beyond it);
- feedback: on the feedback images scored (held out from training where there were enough), the
  new model must be at least as accurate as the old one. Feedback is mostly the old model's
  mistakes, so a new model that learned from it improves there; the record says by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.dataset import Split, prepare
from ..data.preprocess import Preprocess
from ..data.run_images import RunImages
from ..data.sources import open_source
from ..predict import Predictor
from ..runs import Run

PROMOTE, KEEP = "promote", "do-not-promote"


def predicted_labels(predictor: Predictor, part: Split | None) -> list[str]:
    """The top-1 class name of each image of ``part`` (fitted by the predictor's preprocessing)."""
    if part is None or not len(part):
        return []
    top = predictor.batch_logits(RunImages.batches(part)).argmax(axis=1)  # a temperature never changes the top class
    return [predictor.classes[i] for i in top]


def compare(labels: Sequence[str], old: Sequence[str], new: Sequence[str]) -> dict:
    """Accuracy of both models on one image set, and how many answers the new model fixed or broke."""
    truth, old_ok, new_ok = np.asarray(labels), np.asarray(old) == np.asarray(labels), np.asarray(new) == np.asarray(labels)
    n = int(truth.size)
    return {
        "n": n,
        "old_accuracy": float(old_ok.mean()) if n else None,
        "new_accuracy": float(new_ok.mean()) if n else None,
        "fixed": int((~old_ok & new_ok).sum()),  # wrong before, right now
        "broken": int((old_ok & ~new_ok).sum()),  # right before, wrong now
    }


def verdict(test: dict, feedback: dict, tolerance: float, feedback_scope: str) -> tuple[str, list[str]]:
    """``promote`` or ``do-not-promote``, with one reason per criterion."""
    reasons, ok = [], True
    drop = 100.0 * (test["old_accuracy"] - test["new_accuracy"])
    if drop > tolerance + 1e-9:
        ok = False
        reasons.append(f"test accuracy fell {drop:.2f} points ({_pct(test['old_accuracy'])} -> {_pct(test['new_accuracy'])}), "
                       f"more than the tolerance of {tolerance:g}")  # fmt: skip
    else:
        change = "rose" if drop < 0 else "fell" if drop > 0 else "stayed"
        reasons.append(f"test accuracy {change} {abs(drop):.2f} points ({_pct(test['old_accuracy'])} -> "
                       f"{_pct(test['new_accuracy'])}), within the tolerance of {tolerance:g}")  # fmt: skip
    if not feedback["n"]:
        reasons.append("no feedback image could be scored")
    else:
        old, new = feedback["old_accuracy"], feedback["new_accuracy"]
        where = f"on the {feedback['n']} {feedback_scope} feedback images"
        if new < old:
            ok = False
            reasons.append(f"accuracy {where} fell ({_pct(old)} -> {_pct(new)})")
        else:
            reasons.append(f"accuracy {where} {'rose' if new > old else 'held'} ({_pct(old)} -> {_pct(new)})")
    return (PROMOTE if ok else KEEP), reasons


class ImageSets:
    """The old run's test split and the feedback images, decoded (through the cache) once per preprocessing."""

    def __init__(self, old_run: Run, old_classes: Sequence[str], feedback_manifest: Path, cache_dir: str | None):
        self.old_run, self.old_classes = old_run, list(old_classes)
        self.manifest, self.cache_dir = feedback_manifest, cache_dir
        self._done: dict = {}

    def test(self, preprocess: Preprocess) -> tuple[Split, list[str]]:
        """The old run's test images, exactly as its splits.csv recorded them, with their labels."""
        key = ("test", preprocess)
        if key not in self._done:
            part = RunImages(self.old_run, preprocess, self.old_classes, new_data_allowed=False).split("test")
            self._done[key] = (part, [self.old_classes[i] for i in part.labels])
        return self._done[key]

    def feedback(self, preprocess: Preprocess, paths: Sequence[str]) -> tuple[Split, list[str]]:
        """The feedback images at ``paths`` (relative to the export's manifest), with their labels;
        unreadable ones are left out (the export already skipped what Pillow cannot open)."""
        key = ("feedback", preprocess, tuple(paths))
        if key not in self._done:
            source = open_source(self.manifest)
            wanted = set(paths)
            source.samples = [replace(s, split="train") for s in source.samples if s.path in wanted]
            if not source.samples:
                self._done[key] = (None, [])
                return self._done[key]
            labels = list(dict.fromkeys([*self.old_classes, *(s.label for s in source.samples)]))
            prepared = prepare(source, preprocess, classes=labels, val_fraction=0.0, test_fraction=0.0, cache_dir=self.cache_dir)
            part = prepared.split("train")
            self._done[key] = (part, [labels[i] for i in part.labels])
        return self._done[key]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"
