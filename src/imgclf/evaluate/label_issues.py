"""``imgclf data label-issues``: training images whose given label is probably wrong.

Confident learning (Northcutt et al., 2021, through the cleanlab library) needs predicted
probabilities that are out-of-sample: a model that trained on an image has memorised its label,
right or wrong. So the run's training images (its train and val splits) are cut into K
stratified folds (grouped too, when the run kept groups apart), and for each fold a model is
trained with the run's own configuration on the other folds and predicts the held-out one. The
K fold runs live in a temporary folder; only the results land in ``RUN/eval/``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import PreparedData
from ..data.preprocess import Preprocess
from ..data.run_images import RunImages
from ..errors import DataError, UserError
from ..inference.bundle import read_meta
from ..predict import load
from ..progress import log
from ..runs import open_run, write_csv, write_json
from ..train.config import TrainConfig

# Flagging more than this fraction of the images means the fold models, not the labels, are poor.
WEAK_MODEL_FRACTION = 0.15

COLUMNS = ["rank", "path", "given_label", "suggested_label", "given_label_probability", "suggested_probability", "split"]


def find_label_issues(
    run: str | os.PathLike,
    *,
    folds: int = 3,
    epochs: int | None = None,
    data: str | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    seed: int = 0,
) -> list[dict]:
    """Rank the run's training images by how confidently out-of-sample predictions contradict
    their labels; write ``RUN/eval/label_issues.csv`` and ``label_issues.json``.

    ``folds`` models are trained, each with the run's configuration (``epochs`` overrides its
    length; by default each fold trains as long as the run did) on all but one fold of the
    ``splits`` images. ``data`` is where the run's images are now, if they moved. Returns one
    dict per suspected issue, most suspicious first, with the keys of :data:`COLUMNS`;
    ``suggested_label`` is the most probable class other than the given one.
    """
    from cleanlab.filter import find_label_issues as cleanlab_find
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    r = open_run(run)
    if not r.splits.exists():
        raise UserError(f"{run} has no splits.csv; label issues need the run's recorded split")
    cfg = TrainConfig.from_dict(r.read_config())
    cfg.data = str(data or cfg.data)
    if not cfg.data:
        raise DataError(f"{run} does not record its training data; pass --data")
    if folds < 2:
        raise UserError("--folds must be at least 2")
    if epochs is not None and epochs < 1:
        raise UserError("--epochs must be at least 1")
    meta = read_meta(r.model_dir)
    classes, preprocess = list(meta.classes), meta.preprocess
    pool = RunImages(r, preprocess, classes, cfg.data, new_data_allowed=False).prepare(splits)
    y = np.array([classes.index(s.label) for s in pool.samples])
    counts = np.bincount(y, minlength=len(classes))
    if counts.max() < folds:
        raise DataError(f"{len(y)} images are too few for {folds} folds; pass fewer --folds")
    thin = [classes[i] for i in np.flatnonzero(counts < 2)]
    if thin:
        raise DataError(f"class {thin[0]!r} has fewer than 2 training images; cross-validation needs at least 2 per class")
    groups = [s.group for s in pool.samples]
    try:
        if any(groups):
            # Keep each group in one fold, as the run kept it in one split: near-duplicates in the
            # training folds would make the held-out predictions look in-sample.
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            fold_of = _fold_index(splitter.split(np.zeros(len(y)), y, [g or f"\0{i}" for i, g in enumerate(groups)]), len(y))
        else:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            fold_of = _fold_index(splitter.split(np.zeros(len(y)), y), len(y))
    except ValueError as exc:  # e.g. fewer groups than folds
        raise DataError(f"cannot make {folds} cross-validation folds: {exc}") from None

    probs = np.zeros((len(y), len(classes)), dtype=np.float64)
    with tempfile.TemporaryDirectory(prefix="imgclf-label-issues-") as tmp:
        for k in range(folds):
            held = np.flatnonzero(fold_of == k)
            if not len(held):
                continue
            log(f"label issues: fold {k + 1}/{folds}: training on {len(y) - len(held):,} images, predicting {len(held):,}")
            probs[held] = _fold_probabilities(cfg, pool, fold_of, k, Path(tmp), classes, preprocess, epochs)

    ranked = cleanlab_find(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    rows = []
    for rank, i in enumerate(ranked, start=1):
        other = probs[i].copy()
        other[y[i]] = -1.0
        s = int(other.argmax())
        rows.append({
            "rank": rank,
            "path": pool.samples[i].path,
            "given_label": classes[y[i]],
            "suggested_label": classes[s],
            "given_label_probability": float(probs[i, y[i]]),
            "suggested_probability": float(probs[i, s]),
            "split": pool.splits[i],
        })  # fmt: skip
    accuracy = float(np.mean(probs.argmax(1) == y))
    warning = None
    if len(rows) > WEAK_MODEL_FRACTION * len(y):
        # Confident learning trusts the fold models: when they are weak, their errors look like
        # label errors. A real dataset rarely has this many wrong labels.
        warning = (
            f"{len(rows) / len(y):.0%} of the images are flagged and the fold models reach only {accuracy:.1%} "
            "out-of-sample accuracy: most of these are likely model errors; train the folds longer (--epochs)"
        )
    out = r.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "label_issues.csv", [COLUMNS] + [
        [x["rank"], x["path"], x["given_label"], x["suggested_label"],
         f"{x['given_label_probability']:.6f}", f"{x['suggested_probability']:.6f}", x["split"]]
        for x in rows
    ])  # fmt: skip
    write_json(out / "label_issues.json", {
        "method": "confident learning (cleanlab.filter.find_label_issues, prune_by_noise_rate, ranked by self-confidence) "
                  "on K-fold cross-validated out-of-sample probabilities",
        "folds": folds,
        "epochs": epochs if epochs is not None else (None if cfg.time else cfg.epochs),
        "time_per_fold": cfg.time if epochs is None else None,
        "splits": list(splits),
        "images_checked": len(y),
        "out_of_sample_accuracy": accuracy,
        "issues_found": len(rows),
        "warning": warning,
        "issues": rows,
    })  # fmt: skip
    log(f"label issues: {len(rows)} of {len(y):,} images look mislabelled (out-of-sample accuracy {accuracy:.3f})")
    if warning:
        log(f"warning: {warning}")
    return rows


def _fold_index(split_iter, n: int) -> np.ndarray:
    fold_of = np.full(n, -1)
    for k, (_, test) in enumerate(split_iter):
        fold_of[test] = k
    return fold_of


def _fold_probabilities(
    cfg: TrainConfig, pool: PreparedData, fold_of: np.ndarray, k: int, tmp: Path, classes: list[str],
    preprocess: Preprocess, epochs: int | None,
) -> np.ndarray:
    """Train on every fold but ``k`` and return the probabilities for fold ``k`` (in ``classes`` order)."""
    from ..train.fit import fit

    splits_csv = tmp / f"fold{k}.csv"
    write_csv(splits_csv, [["path", "label", "split", "group"]] + [
        [s.path, s.label, "test" if f == k else "train", s.group or ""] for s, f in zip(pool.samples, fold_of)
    ])  # fmt: skip
    fold_cfg = replace(
        cfg, out=str(tmp / f"fold{k}"), splits=str(splits_csv), val_fraction=0.0, test_fraction=0.0,
        early_stopping=0, checkpoint_every=0,  # no validation split: each fold keeps its last epoch
    )  # fmt: skip
    if epochs is not None:
        fold_cfg.epochs, fold_cfg.time = epochs, None
    try:
        fit(fold_cfg, overwrite=True)
    except DataError as exc:
        raise DataError(f"cannot train fold {k + 1} of the cross-validation: {exc}") from None
    predictor = load(tmp / f"fold{k}", backend="torch")
    held = np.flatnonzero(fold_of == k)
    rows = pool.rows[held]
    order = np.argsort(rows, kind="stable")  # sequential reads from the memory-mapped store
    batches = (torch.from_numpy(np.ascontiguousarray(pool.pixels[rows[order[i : i + 256]]])) for i in range(0, len(rows), 256))
    p = predictor.batch_probabilities(batches)
    # The fold model's classes are those of its training folds: normally the run's, in its order.
    fold_probs = np.zeros((len(held), len(classes)))
    column = {c: j for j, c in enumerate(predictor.classes)}
    for i, c in enumerate(classes):
        if c in column:
            fold_probs[order, i] = p[:, column[c]]
    return fold_probs
