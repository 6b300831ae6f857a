"""`imgclf retrain`: feedback into a new run, graded against the old one before it is promoted."""

from __future__ import annotations

import sys

import click

from ..api_retrain import retrain as api_retrain
from .options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--feedback", required=True,
              help="feedback store (the folder `imgclf serve --store` used, or a postgresql:// URL) or an `imgclf feedback export` folder")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the new run directory")
@click.option("--epochs", type=click.IntRange(min=1), help="epochs to train  [default: RUN's]")
@click.option("--from-scratch", is_flag=True, help="start from RUN's configuration's initial weights, not RUN's trained ones "
              "(needed when feedback adds a class)")  # fmt: skip
@click.option("--tolerance", default=0.5, show_default=True, type=click.FloatRange(min=0),
              help="accuracy points the new model may lose on RUN's test split and still be promoted")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="fraction of the feedback kept out of training, to score both models on")
@click.option("--promote", "link", type=click.Path(), help="a `current` link to move to the new run when the verdict is promote")
@click.option("--overwrite", is_flag=True, help="replace an existing run directory at --out")
@click.option("--strict", is_flag=True, help="exit with code 1 when the verdict is do-not-promote (for scripts)")
def retrain(run, feedback, out, epochs, from_scratch, tolerance, holdout, link, overwrite, strict) -> None:
    """Train a new run from RUN's configuration on RUN's data plus the feedback, fine-tuning
    RUN's weights; then score old and new on RUN's test split and on the feedback, and say
    whether to promote the new one.

    \b
    Feedback images never enter the test split: they train, or are held out and scored.
    All numbers and the verdict: OUT/retrain.json.
    Example:
      imgclf retrain runs/demo --feedback runs/demo/feedback --out runs/demo-2 --promote runs/current
    """
    result = api_retrain(run, feedback=feedback, out=out, epochs=epochs, from_scratch=from_scratch, tolerance=tolerance,
                         promote=link, holdout=holdout, overwrite=overwrite)  # fmt: skip
    click.echo(retrain_text(result.record))
    if link and not result.promoted:
        click.echo(f"{link} not moved: the verdict is {result.verdict}")
    if strict and not result.promote:
        sys.exit(1)


def retrain_text(record: dict) -> str:
    """The verdict, its reasons and the numbers behind them, as a few lines."""
    lines = [f"{record['new_run']}: {record['verdict'].upper()} (against {record['old_run']})"]
    lines += [f"  - {reason}" for reason in record["reasons"]]
    lines.append(f"{'images':<34}{'n':>6}{'old':>9}{'new':>9}{'fixed':>7}{'broken':>7}")
    for key, name in (("test", "old run's test split"), ("feedback_held_out", "feedback, held out"),
                      ("feedback_trained", "feedback, trained on")):  # fmt: skip
        s = record[key]
        old = "-" if s["old_accuracy"] is None else f"{100 * s['old_accuracy']:.2f}%"
        new = "-" if s["new_accuracy"] is None else f"{100 * s['new_accuracy']:.2f}%"
        lines.append(f"{name:<34}{s['n']:>6}{old:>9}{new:>9}{s['fixed']:>7}{s['broken']:>7}")
    if record.get("promoted_link"):
        lines.append(f"promoted: {record['promoted_link']} -> {record['new_run']}")
    lines.append(f"details: {record['new_run']}/retrain.json")
    return "\n".join(lines)
