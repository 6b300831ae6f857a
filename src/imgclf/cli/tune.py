"""`imgclf tune`: hyper-parameter search with Optuna."""

from __future__ import annotations

import click

from .. import api_tune
from ..tune.storage import PRUNERS
from . import render_runs
from .options import CONTEXT, config_options, given

TUNE_HELP = """Search training options on DATA with Optuna: --trials runs, each a run directory OUT/trial-NNNN.

\b
The default space searches lr, weight decay, batch size, model, augmentation
strength, label smoothing and epochs; --space FILE narrows or widens it (see the
README), and a training option given here is fixed for every trial. Poor trials
are pruned from their per-epoch validation metric. The study lives in --storage
(default: SQLite at OUT/study.db): the same command resumes it, and several
processes share it (--workers N, or the same --storage and --study on several
machines, with PostgreSQL). Writes OUT/best.yaml, OUT/trials.csv and plots.

\b
Example:
  imgclf tune builtin:digits --trials 20 --img-size 16 --out runs/tune-digits
  imgclf train --config runs/tune-digits/best.yaml --out runs/best
"""


def _tune(data, trials, time, storage, study, space, pruner, out, workers, **options) -> None:
    result = api_tune.tune(
        data, trials=trials, time=time, storage=storage, study=study, space=space, pruner=pruner, out=out, workers=workers,
        **given(options),
    )  # fmt: skip
    render_runs.tuned(result)


tune = click.Command(
    "tune",
    callback=_tune,
    help=TUNE_HELP,
    short_help="Search training options with Optuna (pruning, resumable, parallel).",
    context_settings=CONTEXT,
    params=[
        click.Argument(["data"]),
        click.Option(["--trials"], type=click.IntRange(min=1), default=20, show_default=True,
                     help="trials in the study (all workers together); a resumed study runs up to this many"),
        click.Option(["--time"], help="start no trial after this long, e.g. 1h or 30m (a running trial finishes)"),
        click.Option(["--storage"], help="the study's database URL: sqlite:///study.db or postgresql://user:pass@host/db "
                                         "[default: sqlite at OUT/study.db]"),
        click.Option(["--study"], help="the study's name in the storage [default: OUT's folder name]"),
        click.Option(["--space"], type=click.Path(dir_okay=False), help="a YAML file narrowing or widening the search space"),
        click.Option(["--pruner"], type=click.Choice(PRUNERS), default="median", show_default=True,
                     help="stops poor trials early: median (below the median of earlier trials at the same epoch) or hyperband"),
        click.Option(["--out", "-o"], default="runs/tune", show_default=True, help="the folder of the trials and the report"),
        click.Option(["--workers"], type=click.IntRange(min=1), default=1, show_default=True,
                     help="processes running trials at once on this machine, sharing its cores"),
        *config_options(exclude=("time",)),
    ],
)  # fmt: skip
