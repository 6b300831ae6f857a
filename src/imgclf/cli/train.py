"""`imgclf train` and `imgclf lr-find`: their options are TrainConfig's fields."""

from __future__ import annotations

import os

import click

from .. import api, launch
from . import render
from .options import CONTEXT, config_options, given

TRAIN_HELP = """Train a classifier on DATA and write a run directory.

\b
DATA is a folder (one sub-folder per class, optionally under train/ val/ test/),
a .zip of such a folder, a .csv/.jsonl manifest (path,label[,split,group,...])
or builtin:digits.

\b
Example:
  imgclf train photos/ --model resnet18 --epochs 10 --img-size 128 --out runs/photos
"""


def _train(data, out, config_file, overwrite, resume, **options) -> None:
    options = given(options)
    if out:
        options["out"] = out
    with launch.worker_reports():  # in a process of --nproc N: errors and the result go to the launcher
        result = api.train(data, config=config_file, overwrite=overwrite, resume=resume, **options)
        if launch.REPORT_ENV in os.environ:
            from ..train.distributed_launch import result_to_json

            launch.report(result_to_json(result))
    if launch.shows_output():  # one summary, however many processes trained
        render.trained(result)


train = click.Command(
    "train",
    callback=_train,
    help=TRAIN_HELP,
    context_settings=CONTEXT,
    params=[
        click.Argument(["data"], required=False),
        click.Option(["--out", "-o"], help="the run directory to create, e.g. runs/NAME [required]"),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False),
                     help="read options from a config.yaml (flags given here override it)"),
        click.Option(["--overwrite"], is_flag=True, help="replace an existing run directory at --out"),
        click.Option(["--resume", "resume"], type=click.Path(file_okay=False),
                     help="continue the interrupted run RUN from its last checkpoint (with --epochs N on a finished run: N more epochs)"),
        *config_options(),
    ],
)  # fmt: skip


def _lr_find(data, plot, steps, start_lr, end_lr, **options) -> None:
    render.lr_found(api.lr_find(data, plot=plot, steps=steps, start_lr=start_lr, end_lr=end_lr, **given(options)), data)


lr_find = click.Command(
    "lr-find",
    callback=_lr_find,
    help="The learning-rate range test: a suggested --lr for `imgclf train` with the same options.",
    context_settings=CONTEXT,
    params=[
        click.Argument(["data"]),
        click.Option(["--plot"], default="lr_find.png", show_default=True, type=click.Path(dir_okay=False),
                     help="where to save the loss-against-lr plot"),
        click.Option(["--steps"], default=100, show_default=True, help="steps of the range test"),
        click.Option(["--start-lr"], default=1e-7, show_default=True),
        click.Option(["--end-lr"], default=10.0, show_default=True),
        *config_options(exclude=("lr", "nproc")),
    ],
)  # fmt: skip
