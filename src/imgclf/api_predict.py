"""The Python API's `imgclf predict` (part of :mod:`imgclf.api`, kept beside it because api.py
reached the 400-line limit; import it as ``imgclf.predict_images``).

Like every API function it imports what it needs when called, so ``import imgclf`` stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .predict import Prediction
    from .train.fit import TrainResult


@dataclass
class PredictResult:
    """What `imgclf predict` shows: ``predictions`` (all, or only the unsure ones), out of ``total``
    inputs of which ``errors`` could not be read and ``unsure`` were below the run's threshold."""

    predictions: list[Prediction]
    total: int
    errors: int
    unsure: int
    top_k: int
    output: Path | None = None
    only_unsure: bool = False


def predict_images(
    run: str | os.PathLike | TrainResult,
    inputs: list[str],
    *,
    top_k: int = 3,
    batch_size: int = 64,
    limit: int | None = None,
    backend: str = "auto",
    only_unsure: bool = False,
    output: str | os.PathLike | None = None,
    nproc: int = 1,
) -> PredictResult:
    """`imgclf predict`: labels for files, folders, glob patterns and ``builtin:NAME`` datasets,
    optionally only the unsure ones, written to ``output`` (.csv or .json) when given.

    ``nproc`` above 1 (or torchrun) shares the images out among processes
    (:mod:`imgclf.predict_distributed`); ``output`` then holds all, in input order.
    """
    from .api import _run_path, load
    from .launch import needs_launch
    from .predict import builtin_inputs, expand_inputs, write_predictions
    from .predict_distributed import launch_predict, predict_items, share_out

    out = Path(output) if output else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, not {out.suffix or 'nothing'}")
    if needs_launch(nproc):
        preds, d = launch_predict(_run_path(run), inputs, nproc, out, top_k=top_k, batch_size=batch_size, limit=limit,
                                  backend=backend, only_unsure=only_unsure)  # fmt: skip
        return PredictResult(preds, d["total"], d["errors"], d["unsure"], top_k, out, only_unsure)
    out = share_out(out)  # under torchrun: joins the process group
    predictor = load(run, backend=backend)
    items: list = []
    for spec in inputs:
        items += builtin_inputs(spec, limit) if spec.startswith("builtin:") else expand_inputs([spec])
    items = items[:limit] if limit else items
    preds, merged = predict_items(predictor, items, out, top_k=top_k, batch_size=batch_size)
    unsure = [p for p in preds if p.unsure is True]
    if not merged:  # a torchrun rank other than 0: its own share; rank 0 writes the output
        return PredictResult(unsure if only_unsure else preds, len(preds), sum(1 for p in preds if p.error), len(unsure), top_k)
    readable = [p for p in preds if not p.error]
    if only_unsure and readable and all(p.unsure is None for p in readable):
        where = _run_path(run)
        raise UserError(f"{where} has no confidence threshold yet, so no image can be called unsure; run `imgclf evaluate {where}` first")
    shown = unsure if only_unsure else preds
    if out is not None:
        write_predictions(out, shown)
    return PredictResult(shown, len(preds), sum(1 for p in preds if p.error), len(unsure), top_k, out, only_unsure)
