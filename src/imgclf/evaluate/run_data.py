"""A run's evaluation images: which data, which split, decoded through the cache.

Shared by ``imgclf evaluate`` and ``imgclf robustness`` so both score exactly the same images.
"""

from __future__ import annotations

from ..data.dataset import PreparedData, Split, prepare, read_splits_csv
from ..data.sources import Source, open_source
from ..errors import DataError
from ..predict import Predictor
from ..runs import Run


def open_run_data(run: Run, data: str | None = None) -> tuple[str, Source]:
    """The data to evaluate on: ``data`` if given, else the data the run was trained on."""
    spec = data or run.read_config().get("data")
    if not spec:
        raise DataError(f"{run.root} does not record its training data; pass --data")
    return str(spec), open_source(spec)


def prepare_run_data(
    run: Run, predictor: Predictor, source: Source, *, data: str | None = None, splits: tuple[str, ...] = ("test",)
) -> PreparedData:
    """``splits`` of ``source`` fitted to the model, split as the run recorded it.

    Without ``data`` (or when ``data`` holds the run's images, moved) the split is the one in
    the run's ``splits.csv``. Otherwise the data is new: evaluated on its predefined split when
    it has one, or on all of its images.
    """
    split = splits[0]
    splits_from = run.splits if run.splits.exists() else None
    if splits_from is not None and data is not None:
        known = read_splits_csv(splits_from)
        if not any(s.path in known for s in source.samples):
            splits_from = None  # new data
    if splits_from is None and not any(s.split == split for s in source.samples):
        for s in source.samples:
            s.split = split  # all of the new data is evaluated
    prepared = prepare(
        source, predictor.preprocess, splits_from=splits_from, classes=predictor.classes,
        only_splits=tuple(dict.fromkeys(splits)), val_fraction=0.0, test_fraction=0.0,
        cache_dir=run.read_config().get("cache_dir"),
    )  # fmt: skip
    if not any(s == split for s in prepared.splits):
        raise DataError(f"the data has no readable images in the {split} split")
    return prepared


def load_split(run: Run, predictor: Predictor, *, data: str | None = None, split: str = "test") -> Split:
    """The images of ``split`` as ``imgclf evaluate`` sees them."""
    _, source = open_run_data(run, data)
    return prepare_run_data(run, predictor, source, data=data, splits=(split,)).split(split)
