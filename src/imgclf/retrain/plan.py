"""Which images train the new run, and where each one goes.

The old run's images keep the split its ``splits.csv`` recorded, so old and new are graded on
the very same test images. Feedback images go to training only, never to validation or test:

- a feedback image identical (same bytes) to an old train or val image gives that image its
  label: the old sample is dropped and the feedback's label trains instead (a correction, or a
  confirmation when the labels agree);
- a feedback image identical to an old test image is scored but never trained on (training on
  it would leak the test split into the new model);
- a seeded fraction of the rest (``holdout``, 20% by default) is held out too, so "better on the
  feedback" is measured on images the new model has not seen; with fewer than
  :data:`MIN_HOLDOUT_FEEDBACK` feedback images none is held out (and the verdict says that it
  scored the feedback it trained on).

Identity is by content (SHA-256 of the bytes, the digest the feedback store names images by),
so it holds whatever the images are called.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.sources import Source, normalize_split
from .feedback import FeedbackImage

MIN_HOLDOUT_FEEDBACK = 5  # below this, holding images out leaves too few to learn from and too few to score
SPLITS_HEADER = ["path", "label", "split", "group"]


@dataclass
class DataPlan:
    prefix: str  # put before feedback image paths in the union (unique among the old data's paths)
    rows: list[list[str]]  # the new run's splits.csv rows, header first (what prepare() reuses)
    trained: list[FeedbackImage] = field(default_factory=list)
    held_out: list[FeedbackImage] = field(default_factory=list)  # scored, never trained on
    replaced: int = 0  # old train/val images the feedback gave a label to (the feedback's label trains)
    relabelled: int = 0  # of those, the ones whose label the feedback changed
    test_duplicates: int = 0  # feedback images that are old test images (held out)
    old_images: int = 0  # of the old split kept in the new run

    def counts(self) -> dict:
        return {
            "feedback_images": len(self.trained) + len(self.held_out),
            "trained_on": len(self.trained),
            "held_out": len(self.held_out),
            "old_images_replaced": self.replaced,
            "old_labels_changed": self.relabelled,
            "old_test_images_held_out": self.test_duplicates,
            "old_images_kept": self.old_images,
        }


def plan_data(
    old_source: Source, old_splits: Path, feedback: list[FeedbackImage], *, holdout: float = 0.2, seed: int = 0
) -> DataPlan:
    """The new run's split: the old ``splits.csv`` (read from ``old_source``) plus ``feedback``."""
    recorded = _read_split_rows(old_splits)
    by_digest = {f.sha256: f for f in feedback}
    split_of_digest: dict[str, str] = {}
    drop: set[str] = set()
    changed = 0
    for path, (label, split, _) in recorded.items():
        digest = _digest(old_source, path)
        if digest in by_digest:
            split_of_digest[digest] = split
            if split != "test":
                drop.add(path)
                changed += by_digest[digest].label != label
    in_test = [f for f in feedback if split_of_digest.get(f.sha256) == "test"]
    candidates = [f for f in feedback if split_of_digest.get(f.sha256) != "test"]
    n_hold = int(round(holdout * len(candidates))) if len(candidates) >= MIN_HOLDOUT_FEEDBACK else 0
    n_hold = min(n_hold, len(candidates) - 1) if candidates else 0
    held = set(np.random.default_rng(seed).permutation(len(candidates))[:n_hold].tolist())
    plan = DataPlan(prefix=_free_prefix(recorded), rows=[SPLITS_HEADER])
    plan.trained = [f for i, f in enumerate(candidates) if i not in held]
    plan.held_out = [f for i, f in enumerate(candidates) if i in held] + in_test
    plan.test_duplicates, plan.replaced, plan.relabelled = len(in_test), len(drop), changed
    for path, (label, split, group) in recorded.items():
        if path not in drop:
            plan.rows.append([path, label, split, group])
    plan.old_images = len(plan.rows) - 1
    plan.rows += [[plan.prefix + f.path, f.label, "train", ""] for f in plan.trained]
    return plan


def _read_split_rows(path: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (label, split, group) of a run's splits.csv, in its order."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["path"]: (r["label"], normalize_split(r["split"]) or "train", r.get("group") or "") for r in csv.DictReader(fh)}


def _digest(source: Source, path: str) -> str | None:
    try:
        return hashlib.sha256(source.read_bytes(path)).hexdigest()
    except OSError:  # gone since the old run read it: it cannot match anything
        return None


def _free_prefix(recorded: dict) -> str:
    """``feedback:``, or ``feedback2:`` ... when the old data already has that prefix (the old run
    was itself a retrain, whose own feedback is part of its data)."""
    k = 1
    while True:
        prefix = "feedback:" if k == 1 else f"feedback{k}:"
        if not any(p.startswith(prefix) for p in recorded):
            return prefix
        k += 1
