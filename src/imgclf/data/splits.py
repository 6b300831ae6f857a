"""Train / validation / test splits: honour the ones the data brings, make the missing ones.

Made splits are stratified by label (so every class appears in proportion) and, with a group
column, grouped: all images of one group (capture session, patient, user) land in one split, so
near-identical images cannot leak from train into test. Deterministic for a given seed.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split


def _carve(
    idx: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, carved) with about ``fraction`` of it carved out."""
    if fraction <= 0 or len(idx) < 2:
        return idx, idx[:0]
    if groups is not None:
        n_groups = len(set(groups[idx].tolist()))
        n_splits = max(2, int(round(1.0 / fraction)))
        if n_groups < 2:
            raise ValueError("a grouped split needs at least two groups")
        n_splits = min(n_splits, n_groups)
        with warnings.catch_warnings():
            # "The least populated class has only N members": stratification is best effort.
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            rest, carved = next(cv.split(idx, labels[idx], groups[idx]))
        return idx[rest], idx[carved]
    n_carve = max(1, int(round(fraction * len(idx))))
    try:
        rest, carved = train_test_split(
            idx, test_size=n_carve, stratify=labels[idx], random_state=seed
        )
    except ValueError:
        # A class with a single image cannot be stratified; fall back to a plain random split.
        rest, carved = train_test_split(idx, test_size=n_carve, random_state=seed)
    return np.sort(rest), np.sort(carved)


def assign_splits(
    labels: list[str],
    given: list[str | None],
    *,
    groups: list[str | None] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[list[str], str]:
    """Return the split of every sample and a description of how it was made.

    ``given`` holds predefined splits (None where the data names none). Samples without a split
    are divided into train/val/test by the fractions; a predefined layout lacking val or test
    gets it carved from its train part with the same fractions.
    """
    n = len(labels)
    lab = np.asarray(labels)
    grp = None
    if groups is not None:
        if any(g is None or g == "" for g in groups):
            missing = sum(1 for g in groups if g is None or g == "")
            raise ValueError(f"{missing} sample(s) have no value in the group column")
        grp = np.asarray(groups)
    out = np.array([g or "" for g in given], dtype=object)
    free = np.flatnonzero(out == "")
    notes = []
    if len(free) == n:
        notes.append("stratified" + (" by group" if grp is not None else ""))
        # Test first, then validation as its share of what remains.
        rest, test = _carve(free, lab, grp, test_fraction, seed)
        val_share = val_fraction / max(1e-9, 1.0 - test_fraction)
        train, val = _carve(rest, lab, grp, val_share, seed + 1)
        out[train], out[val], out[test] = "train", "val", "test"
    else:
        notes.append("predefined")
        out[free] = "train"
        for split, fraction, salt in (("test", test_fraction, 0), ("val", val_fraction, 1)):
            if not np.any(out == split) and fraction > 0:
                train_idx = np.flatnonzero(out == "train")
                _, carved = _carve(train_idx, lab, grp, fraction, seed + salt)
                out[carved] = split
                notes.append(f"{split} carved from train ({fraction:.0%})")
    return out.tolist(), ", ".join(notes)
