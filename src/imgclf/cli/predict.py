"""`imgclf predict`: labels for new images."""

from __future__ import annotations

import os

import click

from .. import api, launch
from ..inference.names import BACKENDS
from . import render
from .options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", default=3, show_default=True, help="how many labels to show per image")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write predictions to a .csv or .json file")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--limit", type=int, help="predict at most this many images")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(BACKENDS),
              help="auto: the run's ONNX export when it passed its export check for the current weights (parity.json), else PyTorch")
@click.option("--only-unsure", is_flag=True,
              help="list (and write to --output) only the images below the confidence threshold `imgclf evaluate` stored")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(min=1),
              help="share the images out among this many processes (needs --output; the same under torchrun)")
def predict(run, inputs, top_k, output, batch_size, limit, backend, only_unsure, nproc) -> None:
    """Labels for new images: files, folders, glob patterns (quote them) or builtin:NAME.

    RUN is a run directory, a model bundle folder or an exported .onnx file."""
    with launch.worker_reports():  # in a process of --nproc N: errors and the result go to the launcher
        result = api.predict_images(
            run, list(inputs), top_k=top_k, batch_size=batch_size, limit=limit, backend=backend, only_unsure=only_unsure,
            output=output, nproc=nproc,
        )  # fmt: skip
        if launch.REPORT_ENV in os.environ:
            from ..predict_distributed import prediction_to_json

            counts = {"total": result.total, "errors": result.errors, "unsure": result.unsure}
            launch.report({"predictions": [prediction_to_json(p) for p in result.predictions], **counts})
    if launch.shows_output():
        render.predictions(result)
