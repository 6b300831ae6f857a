"""``imgclf evaluate``: a trained run's metrics on its test split, written under ``RUN/eval/``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.dataset import prepare, read_splits_csv
from ..data.loader import BatchLoader
from ..data.sources import open_source
from ..errors import DataError
from ..predict import load
from ..runs import atomic_write_text, open_run, write_csv, write_json
from .metrics import classification_metrics
from .plots import confusion_matrix_png


@dataclass
class EvalResult:
    eval_dir: Path
    split: str
    metrics: dict
    data: str


def evaluate(run: str | os.PathLike, *, data: str | None = None, split: str = "test", batch_size: int = 256) -> EvalResult:
    """Evaluate ``run`` on its ``split`` (test by default) and write ``RUN/eval/``.

    Without ``data`` the images come from the data the run was trained on, split exactly as
    recorded in ``splits.csv``. With ``data``: if it holds the run's images (the same data,
    moved), the recorded split is reused; otherwise it is new data, evaluated on its predefined
    ``split`` if it has one, or on all of its images.
    """
    r = open_run(run)
    predictor = load(r.root)
    config = r.read_config()
    spec = data or config.get("data")
    if not spec:
        raise DataError(f"{run} does not record its training data; pass --data")
    source = open_source(spec)
    splits_from = r.splits if r.splits.exists() else None
    if splits_from is not None and data is not None:
        known = read_splits_csv(splits_from)
        if not any(s.path in known for s in source.samples):
            splits_from = None  # new data
    only = (split,)
    if splits_from is None and not any(s.split == split for s in source.samples):
        for s in source.samples:
            s.split = split  # all of the new data is evaluated
    prepared = prepare(
        source, predictor.preprocess, splits_from=splits_from, classes=predictor.classes,
        only_splits=only, val_fraction=0.0, test_fraction=0.0, cache_dir=config.get("cache_dir"),
    )  # fmt: skip
    part = prepared.split(split)
    probs = predictor.batch_probabilities(x for x, _ in BatchLoader(part, batch_size))
    metrics = classification_metrics(part.labels, probs, predictor.classes)
    metrics.update(
        split=split,
        data=str(spec),
        images_skipped=len(prepared.skipped),
        skipped=prepared.skipped,
        temperature=predictor.temperature,
    )
    out = r.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    _write_outputs(out, metrics, predictor.classes, part, probs)
    return EvalResult(out, split, metrics, str(spec))


def _write_outputs(out: Path, metrics: dict, classes: list[str], part, probs: np.ndarray) -> None:
    cm = metrics["confusion_matrix"]
    rows = [["true \\ predicted", *classes]] + [[c, *cm[i]] for i, c in enumerate(classes)]
    write_csv(out / "confusion_matrix.csv", rows)
    confusion_matrix_png(cm, classes, out / "confusion_matrix.png")
    confusion_matrix_png(cm, classes, out / "confusion_matrix_normalized.png", normalize=True)
    per_class = [["class", "precision", "recall", "f1", "support"]] + [
        [r["class"], f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}", r["support"]]
        for r in metrics["per_class"]
    ]
    write_csv(out / "per_class.csv", per_class)
    pred = probs.argmax(1)
    preds = [["path", "label", "predicted", "probability", "correct"]] + [
        [s.path, classes[t], classes[p], f"{probs[i, p]:.6f}", int(t == p)]
        for i, (s, t, p) in enumerate(zip(part.samples, part.labels, pred))
    ]
    write_csv(out / "predictions.csv", preds)
    atomic_write_text(out / "classification_report.txt", metrics["classification_report"])

