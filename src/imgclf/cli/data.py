"""`imgclf data check` and `imgclf data label-issues`: the health of a dataset and of its labels."""

from __future__ import annotations

import sys

import click

from .. import api
from . import render
from .options import CONTEXT


@click.group(context_settings=CONTEXT)
def data() -> None:
    """Inspect datasets."""


@data.command("check", context_settings=CONTEXT)
@click.argument("data")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--strict", is_flag=True, help="exit with code 1 when problems are found")
@click.option("--group-column", help="manifest column whose values must stay within one split")
@click.option("--seed", default=0, show_default=True, help="the split seed (as in imgclf train) for the leakage check")
def check(data, as_json, strict, group_column, seed) -> None:
    """Health of a dataset: class balance, unreadable files, duplicates and leakage, sizes, modes."""
    report = api.check_data(data, group_column=group_column, seed=seed)
    render.data_check(report, as_json=as_json)
    if strict and report["problems"]:
        render.problem_count(report)
        sys.exit(1)


@data.command("label-issues", context_settings=CONTEXT)
@click.argument("run")
@click.option("--folds", default=3, show_default=True, help="cross-validation folds (one model trained per fold)")
@click.option("--epochs", type=int, help="epochs per fold model [default: as long as RUN trained]")
@click.option("--data", help="where the run's images are now, if they moved")
@click.option("--show", default=20, show_default=True, help="print this many of the most suspicious images")
def label_issues(run, folds, epochs, data, show) -> None:
    """Training images of RUN whose label is probably wrong: confident learning on out-of-sample
    predictions of cross-validated models trained with RUN's configuration. Writes
    RUN/eval/label_issues.csv, most suspicious first."""
    render.label_issues(api.label_issues(run, folds=folds, epochs=epochs, data=data), run, show)
