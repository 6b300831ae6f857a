"""Groups of identical or near-identical images, and the ones a split puts on both sides.

A group (cluster) joins images that are byte-identical (one content key, so one row of the pixel
store) or near-duplicates by their perceptual hashes (:mod:`.near_duplicates`), transitively.
:func:`prepare <imgclf.data.dataset.prepare>` uses them to keep each group in one split
(``--group-duplicates``) and to refuse a split whose training images have copies in val or test
(``--allow-leakage`` overrides): such a model is scored on images it memorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .near_duplicates import clusters, near_duplicate_pairs

_SHOWN = 3  # groups a message names before "and N more"


@dataclass
class DuplicateGroups:
    """``cluster``: a group number per sample (-1: in no group); ``exact``: per group, whether all
    its images are byte-identical."""

    cluster: np.ndarray
    exact: dict[int, bool]

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, c in enumerate(self.cluster.tolist()):
            if c >= 0:
                out.setdefault(c, []).append(i)
        return out


def find_duplicate_groups(
    keys: Sequence[object | None], phash: np.ndarray, dhash: np.ndarray, hashed: np.ndarray
) -> DuplicateGroups:
    """Groups among samples whose content is ``keys`` (None: unreadable, in no group), with
    perceptual hashes where ``hashed``."""
    n = len(keys)
    readable = np.array([k is not None for k in keys], dtype=bool)
    index: dict[object, int] = {}
    exact_pairs = []
    for i, k in enumerate(keys):
        if k is not None:
            first = index.setdefault(k, i)
            if first != i:
                exact_pairs.append((first, i))
    near = near_duplicate_pairs(phash, dhash, hashed & readable)
    pairs = np.concatenate([np.asarray(exact_pairs, dtype=np.int64).reshape(-1, 2), near])
    labels = clusters(n, pairs) if n else np.zeros(0, dtype=np.int64)
    size = np.bincount(labels, minlength=1) if n else np.zeros(1, dtype=np.int64)
    cluster = np.where(size[labels] > 1, labels, -1) if n else labels
    exact = {}
    for c in np.unique(cluster[cluster >= 0]).tolist():
        exact[c] = len({keys[i] for i in np.flatnonzero(cluster == c)}) == 1
    return DuplicateGroups(cluster, exact)


def group_labels(groups: DuplicateGroups, given: Sequence[str | None] | None = None) -> list[str]:
    """A group name per sample for the grouped splitter: a duplicate group and a ``given`` group
    (a manifest's group column) that share an image become one group; an image in neither is
    its own group."""
    n = len(groups.cluster)
    ids: dict[str, int] = {}
    pairs = []
    for i in range(n):
        names = []
        if groups.cluster[i] >= 0:
            names.append(f"dup:{groups.cluster[i]}")
        if given is not None and given[i] not in (None, ""):
            names.append(f"col:{given[i]}")
        for name in names:
            node = ids.setdefault(name, n + len(ids))
            pairs.append((i, node))
    labels = clusters(n + len(ids), np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    return [f"g{labels[i]}" for i in range(n)]


def leaking_groups(groups: DuplicateGroups, split_of: Sequence[str | None]) -> list[list[int]]:
    """Groups with images in train and in val or test, each as its sample indices (train first),
    in the order of their first image."""
    out = []
    for members in groups.members().values():
        splits = {split_of[i] for i in members}
        if "train" in splits and splits & {"val", "test"}:
            out.append(sorted(members, key=lambda i: (split_of[i] != "train", i)))
    return sorted(out, key=lambda m: min(m))


def leakage_summary(groups: DuplicateGroups, leaks: list[list[int]], paths: Sequence[str], split_of: Sequence[str | None]) -> dict:
    """What ``data_report.json`` records: counts, and every leaking group's paths and splits."""
    members = groups.members()
    return {
        "groups": len(members),
        "images_in_groups": sum(len(m) for m in members.values()),
        "exact_groups": sum(groups.exact.values()),
        "leaking_groups": [
            {"paths": [paths[i] for i in m], "splits": [split_of[i] for i in m], "exact": groups.exact[int(groups.cluster[m[0]])]}
            for m in leaks
        ],
    }


def leakage_message(groups: DuplicateGroups, leaks: list[list[int]], paths: Sequence[str], split_of: Sequence[str | None],
                    *, predefined: bool) -> str:  # fmt: skip
    """The one sentence that refuses the split: how many groups, the first few, what to do."""
    n_exact = sum(groups.exact[int(groups.cluster[m[0]])] for m in leaks)
    kinds = []
    if n_exact:
        kinds.append(f"{n_exact} identical")
    if len(leaks) - n_exact:
        kinds.append(f"{len(leaks) - n_exact} near-identical")
    shown = "; ".join(" = ".join(f"{paths[i]} [{split_of[i]}]" for i in m[:3]) + (" = ..." if len(m) > 3 else "") for m in leaks[:_SHOWN])
    more = f" and {len(leaks) - _SHOWN} more" if len(leaks) > _SHOWN else ""
    fix = ("move the copies so each group sits in one split folder (`imgclf data check` lists them all)" if predefined
           else "pass --group-duplicates to keep each group in one split")  # fmt: skip
    return (
        f"{len(leaks)} group{'s' * (len(leaks) != 1)} of duplicate images ({', '.join(kinds)}) are in train and in val or test, "
        f"so evaluation would score images the model trained on: {shown}{more}; {fix}, or pass --allow-leakage to train anyway"
    )
