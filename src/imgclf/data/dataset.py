"""Turn a source into training-ready data: readable samples, classes, splits and cached pixels.

:func:`prepare` is the single entry point used by train, evaluate and ``data check``-style
commands: it opens the source, decodes every image once through the cache (skipping and
reporting the unreadable ones), refuses data that cannot be trained on, and assigns splits.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import DataError, UserError
from ..progress import log
from ..runs import write_csv
from .cache import CacheResult, PixelStore
from .leakage import (
    find_duplicate_groups,
    group_labels,
    leakage_message,
    leakage_summary,
    leaking_groups,
)
from .preprocess import Preprocess
from .sources import SPLITS, Sample, Source, normalize_split, open_source
from .splits import assign_splits
from .walk import printable


@dataclass
class Split:
    """The samples of one split, as rows of the pixel store plus integer labels."""

    pixels: np.ndarray  # memory-mapped store, shared by all splits
    rows: np.ndarray
    labels: np.ndarray
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class PreparedData:
    source: Source
    classes: list[str]
    samples: list[Sample]  # readable samples only
    splits: list[str]  # split of each readable sample
    pixels: np.ndarray
    rows: np.ndarray
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} for unreadable images
    split_method: str = ""
    duplicates: dict | None = None  # leakage.leakage_summary(), when duplicates were looked for

    def split(self, name: str) -> Split:
        idx = [i for i, s in enumerate(self.splits) if s == name]
        index = {c: i for i, c in enumerate(self.classes)}
        return Split(
            self.pixels,
            self.rows[idx],
            np.array([index[self.samples[i].label] for i in idx], dtype=np.int64),
            [self.samples[i] for i in idx],
        )

    def report(self) -> dict:
        """The content of ``data_report.json``: what was read, skipped and how it was split."""
        per_split = {
            s: dict(sorted(Counter(x.label for x, sp in zip(self.samples, self.splits) if sp == s).items()))
            for s in SPLITS
        }
        counts = Counter(s.label for s in self.samples)
        return {
            "source": self.source.describe(),
            "images_found": len(self.samples) + len(self.skipped),
            "images_read": len(self.samples),
            "images_skipped": len(self.skipped),
            "skipped": self.skipped,
            "files_ignored": [{"path": i.path, "reason": i.reason} for i in self.source.ignored],
            "classes": self.classes,
            "class_counts": {c: counts[c] for c in self.classes},
            "imbalance_ratio": max(counts.values(), default=0) / max(1, min(counts.values(), default=0)),
            "split_method": self.split_method,
            "split_sizes": {s: sum(1 for x in self.splits if x == s) for s in SPLITS},
            "split_class_counts": per_split,
            "metadata_columns": self.source.meta_columns,
            **({"duplicates": self.duplicates} if self.duplicates is not None else {}),
        }

    def write_splits_csv(self, path: Path) -> None:
        meta_cols = self.source.meta_columns
        write_csv(path, [["path", "label", "split", "group", *meta_cols]] + [
            [s.path, s.label, sp, s.group or "", *(s.meta.get(c, "") for c in meta_cols)]
            for s, sp in zip(self.samples, self.splits)
        ])  # fmt: skip


def read_splits_csv(path: Path) -> dict[str, tuple[str, str, str | None]]:
    """path -> (label, split, group) from a run's ``splits.csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {
            r["path"]: (r["label"], normalize_split(r["split"]), r.get("group") or None)
            for r in csv.DictReader(fh)
        }


def prepare(
    data: str | os.PathLike | Source,
    preprocess: Preprocess,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_column: str | None = None,
    splits_from: Path | None = None,
    classes: list[str] | None = None,
    only_splits: tuple[str, ...] | None = None,
    cache_dir: str | os.PathLike | None = None,
    group_duplicates: bool = False,
    leakage: str = "ignore",
) -> PreparedData:
    """Open, decode (through the cache), validate and split a dataset.

    ``splits_from`` reuses a run's ``splits.csv`` exactly (evaluation). ``classes`` fixes the
    class list and order (a trained model's); labels outside it are refused. ``only_splits``
    decodes just those splits (evaluation needs only the test images).

    Duplicates (:mod:`.leakage`): ``group_duplicates`` keeps each group of identical or
    near-identical images in one of the splits made here; ``leakage`` says what to do when a
    group has images in train and in val or test: ``"refuse"`` (a DataError naming them),
    ``"warn"`` (log it and go on) or ``"ignore"`` (do not look; the default). Looking means
    decoding every image before splitting, which training does anyway.
    """
    if leakage not in ("ignore", "warn", "refuse"):
        raise ValueError(f"leakage must be ignore, warn or refuse, not {leakage!r}")
    look = group_duplicates or leakage != "ignore"
    if look and only_splits:
        raise ValueError("duplicates are looked for across all splits: only_splits cannot be combined with it")
    source = data if isinstance(data, Source) else open_source(data)
    # Copies: the group column and a reused splits.csv rewrite samples, and the caller's Source
    # (possibly prepared again with other options) must keep what it read.
    samples = [replace(s, meta=dict(s.meta)) for s in source.samples]
    if group_column:
        samples = _apply_group_column(source, samples, group_column)
    given: list[str | None]
    if splits_from is not None:
        saved = read_splits_csv(splits_from)
        samples = [s for s in samples if s.path in saved]
        if not samples:
            raise DataError(
                f"none of the images listed in {printable(str(splits_from))} are in {printable(source.uri)}; "
                "pass the data the run was trained on with --data"
            )
        for s in samples:
            s.label, s.split, s.group = saved[s.path][0], saved[s.path][1], saved[s.path][2] or s.group
        given = [s.split for s in samples]
    else:
        given = [s.split for s in samples]

    # Splits are assigned before decoding (from the listing alone) so that evaluation can decode
    # only its split; unreadable images are then dropped from whichever split they fell in. To
    # look for duplicates every image is decoded first (their groups can shape the split).
    got = _decode(source, samples, preprocess, cache_dir) if look else None
    dups = find_duplicate_groups(_keys(got), got.phash, got.dhash, got.hashed) if got is not None else None
    groups = [s.group for s in samples] if group_column else None
    if group_duplicates and dups is not None:
        groups = group_labels(dups, groups)
    if splits_from is None:
        try:
            split_of, method = assign_splits(
                [s.label for s in samples],
                given,
                groups=groups,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
                seed=seed,
            )
        except ValueError as exc:
            raise DataError(f"cannot split the data: {exc}") from None
    else:
        split_of, method = [s.split or "train" for s in samples], f"reused from {printable(str(splits_from))}"
    if only_splits:
        keep = [i for i, sp in enumerate(split_of) if sp in only_splits]
        samples, split_of = [samples[i] for i in keep], [split_of[i] for i in keep]
        if not samples:
            raise DataError(f"the data has no images in the {'/'.join(only_splits)} split")

    if group_duplicates and dups is not None and splits_from is None:
        method += ", duplicates grouped"
    if got is None:
        got = _decode(source, samples, preprocess, cache_dir)
    summary = None
    if dups is not None:
        paths = [s.path for s in samples]
        leaks = leaking_groups(dups, split_of)
        summary = leakage_summary(dups, leaks, paths, split_of)
        if leaks:
            # Predefined splits (folders, a manifest's column, a reused splits.csv) can only be fixed in the data.
            fixed = splits_from is not None or any(given[i] == split_of[i] for m in leaks for i in m if split_of[i] != "train")
            message = leakage_message(dups, leaks, paths, split_of, predefined=fixed)
            if leakage == "refuse":
                raise DataError(message)
            if leakage == "warn":
                log(f"warning: {len(leaks)} group(s) of duplicate images are in train and in val or test (--allow-leakage), "
                    "so evaluation scores will be optimistic; data_report.json lists them")  # fmt: skip
    ok = [i for i in range(len(samples)) if i not in got.failures]
    skipped = [{"path": samples[i].path, "reason": r} for i, r in sorted(got.failures.items())]

    all_labels = sorted({s.label for s in samples}, key=_natural_key)
    readable = Counter(samples[i].label for i in ok)
    if classes is None:
        empty = [c for c in all_labels if readable[c] == 0]
        if empty:
            raise DataError(
                f"class {empty[0]!r} has no readable image"
                + (f" (and {len(empty) - 1} more classes)" if len(empty) > 1 else "")
                + "; fix or remove that folder"
            )
        classes = all_labels
        if len(classes) < 2:
            raise DataError(
                f"found only one class ({classes[0]!r}) in {printable(source.uri)}; "
                "a classifier needs at least two (one folder per class)"
            )
    else:
        unknown = sorted(set(all_labels) - set(classes))
        if unknown:
            raise DataError(f"label {unknown[0]!r} is not one of the model's classes ({', '.join(classes)})")
    return PreparedData(
        source=source,
        classes=list(classes),
        samples=[samples[i] for i in ok],
        splits=[split_of[i] for i in ok],
        pixels=got.pixels,
        rows=got.rows[ok],
        skipped=skipped,
        split_method=method,
        duplicates=summary,
    )


def _decode(source: Source, samples: list[Sample], preprocess: Preprocess, cache_dir) -> CacheResult:
    store = PixelStore(preprocess, cache_dir)
    try:
        return store.get(source, [s.path for s in samples])
    finally:
        store.close()


def _keys(got: CacheResult) -> list[int | None]:
    """Content identity per sample: its store row (one per content key), None when unreadable."""
    return [int(r) if r >= 0 else None for r in got.rows]


def _apply_group_column(source: Source, samples: list[Sample], column: str) -> list[Sample]:
    if column == "group":
        if all(s.group is None for s in samples):
            raise UserError(f"--group-column group: {printable(source.uri)} has no 'group' column")
        return samples
    if column not in source.meta_columns:
        available = ", ".join(["group", *source.meta_columns]) if source.meta_columns else "none"
        raise UserError(
            f"--group-column {column}: {printable(source.uri)} has no such column (metadata columns: {available}); "
            "groups need a CSV/JSONL manifest"
        )
    for s in samples:
        s.group = s.meta.get(column) or None
    return samples


def _natural_key(label: str):
    """Sort "2" before "10" and "cat" before "dog"."""
    return (0, int(label), "") if label.isdigit() else (1, 0, label)
