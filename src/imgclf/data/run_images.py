"""The images of a run's splits, as its model sees them: one object for evaluate, robustness,
export, label issues and ``bench infer``, so they all score the same images the same way.

Which images: the data the run was trained on (or ``data``, where they are now), split exactly
as the run's ``splits.csv`` recorded. ``data`` that holds none of the run's images is new data:
evaluated on its own predefined split when it has one, or on all of its images (commands that
need the recorded split, such as export and label issues, refuse it). How: decoded once through
the cache and fitted by the model's preprocessing (``Preprocess``), with the model's class list.

It lives at the data layer because all it needs is the run directory, :func:`~.dataset.prepare`
and the bundle's preprocessing and classes, which callers pass in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from ..errors import DataError
from ..runs import Run
from .dataset import PreparedData, Split, prepare, read_splits_csv
from .preprocess import Preprocess
from .sources import open_source

BATCH = 64


class RunImages:
    """The images of ``run``'s splits fitted by ``preprocess``, labelled in ``classes`` order."""

    def __init__(
        self,
        run: Run,
        preprocess: Preprocess,
        classes: Sequence[str],
        data: str | None = None,
        *,
        new_data_allowed: bool = True,
    ):
        config = run.read_config()
        spec = data or config.get("data")
        if not spec:
            raise DataError(f"{run.root} does not record its training data; pass --data")
        self.run, self.preprocess, self.classes = run, preprocess, list(classes)
        self.spec = str(spec)
        self.source = open_source(self.spec)
        self.cache_dir = config.get("cache_dir")
        self.recorded = read_splits_csv(run.splits) if run.splits.exists() else {}
        # Data passed with --data is the run's own images (moved) when it holds any recorded image.
        self.reuses_split = bool(self.recorded) and (data is None or any(s.path in self.recorded for s in self.source.samples))
        if not self.reuses_split and not new_data_allowed:
            if not self.recorded:
                raise DataError(f"{run.root} has no splits.csv, so the images of its splits are unknown")
            raise DataError(f"none of the run's images are in {self.source.uri}; pass --data with where they are now")

    def prepare(self, splits: Sequence[str] = ("test",), *, limit: int | None = None) -> PreparedData:
        """``splits`` decoded through the cache; the first is the one that must have readable images.

        ``limit`` caps each recorded split at that many images, a fixed subset (seed 0) decoded
        alone (for quick export checks); it does not apply to new data.
        """
        splits = tuple(dict.fromkeys(splits))
        main = splits[0]
        sub = copy.copy(self.source)  # a view with fewer samples; reading still goes to the source
        if self.reuses_split:
            wanted: set[str] = set()
            for name in splits:
                paths = sorted(p for p, (_, sp, _) in self.recorded.items() if sp == name)
                if limit and len(paths) > limit:
                    pick = np.random.default_rng(0).choice(len(paths), size=limit, replace=False)
                    paths = [paths[i] for i in sorted(pick)]
                wanted.update(paths)
            sub.samples = [s for s in self.source.samples if s.path in wanted]
            if not sub.samples:
                where = self.source.uri
                raise DataError(f"none of the run's {'/'.join(splits)} images are in {where}; pass --data with where they are now")
            splits_from = self.run.splits
        else:
            has_split = any(s.split == main for s in self.source.samples)
            sub.samples = list(self.source.samples) if has_split else [replace(s, split=main) for s in self.source.samples]
            splits_from = None
        prepared = prepare(
            sub, self.preprocess, splits_from=splits_from, classes=self.classes, only_splits=splits,
            val_fraction=0.0, test_fraction=0.0, cache_dir=self.cache_dir,
        )  # fmt: skip
        if main not in prepared.splits:
            raise DataError(f"the data has no readable images in the {main} split")
        return prepared

    def split(self, name: str = "test", *, limit: int | None = None) -> Split:
        """The images of one split (see :meth:`prepare`)."""
        return self.prepare((name,), limit=limit).split(name)

    def first_split(self, *names: str) -> str:
        """The first of ``names`` that the run recorded images for (export checks on val, else test)."""
        for name in names:
            if any(sp == name for _, sp, _ in self.recorded.values()):
                return name
        raise DataError(f"{self.run.root} has no {' or '.join(names)} images recorded in splits.csv")

    def encoded(self, name: str = "test", count: int = 64, seed: int = 0) -> list[bytes]:
        """Encoded bytes of up to ``count`` images of split ``name`` (a seeded random choice), as
        a user would send them: for end-to-end timings that include decoding."""
        if self.reuses_split:
            paths = sorted(p for p, (_, sp, _) in self.recorded.items() if sp == name)
            known = {s.path for s in self.source.samples}
            paths = [p for p in paths if p in known]
        else:
            paths = [s.path for s in self.source.samples if s.split in (None, name)]
        paths = paths or [s.path for s in self.source.samples]
        pick = np.random.default_rng(seed).permutation(len(paths))[:count]
        return [self.source.read_bytes(paths[i]) for i in pick]

    @staticmethod
    def batches(part: Split, size: int = BATCH) -> Iterator[torch.Tensor]:
        """uint8 NHWC batches in the split's order (so they line up with ``part.labels``)."""
        for i in range(0, len(part), size):
            yield torch.from_numpy(np.ascontiguousarray(part.pixels[part.rows[i : i + size]]))
