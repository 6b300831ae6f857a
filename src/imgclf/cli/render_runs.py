"""What `imgclf tune` and `imgclf runs` print (beside :mod:`.render`, which is near its size limit).

rich is imported only when a table is drawn; styles vanish when stdout is not a terminal, so a
difference is also marked with ``*``.
"""

from __future__ import annotations

import json

import click

TOP_TRIALS = 10
STATUS_STYLE = {"running": "cyan", "finished": "green", "interrupted": "yellow"}


def _table(*columns: str, right: tuple[str, ...] = ()):
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


def _print(table, width: int = 150) -> None:
    from rich.console import Console

    Console(width=max(width, Console().width)).print(table)


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def _escape(text) -> str:
    from rich.markup import escape

    return escape(str(text))


# ------------------------------------------------------------------------------------------- tune


def tuned(result) -> None:
    counts = {s: result.count(s) for s in ("complete", "pruned", "fail", "running")}
    click.echo(
        f"\nStudy {result.study!r} ({result.storage}): {len(result.trials)} trials, {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed" + (f", {counts['running']} running" if counts["running"] else "")
        + f"; {_duration(result.seconds)} here."
    )
    top = result.top(TOP_TRIALS)
    if top:
        names = list(dict.fromkeys(k for t in top for k in t.params))
        numbers = ("rank", "trial", result.monitor, "trained", "time")
        table = _table(*numbers, *names, right=numbers)
        for rank, t in enumerate(top, 1):
            table.add_row(str(rank), str(t.number), f"{t.value:.4f}", _num(t.epochs), _duration(t.seconds),
                          *(_escape(_num(t.params.get(n), 3)) for n in names))  # fmt: skip
        _print(table)
    for t in result.trials:
        if t.state == "fail" and t.error:
            click.echo(f"trial {t.number} failed: {t.error}")
    if result.best is None:
        click.echo("No trial has finished yet, so there is no best configuration; run the same command to continue the study.")
        return
    click.echo(f"Best: trial {result.best.number}, {result.monitor} {result.best.value:.4f} ({result.best.run_dir})")
    if result.best_config:
        click.echo(f"Best configuration: {result.best_config}")
    for path in result.plots:
        click.echo(f"Plot: {path}")
    click.echo(f"All trials: {result.trials_csv}")
    if result.best_config:
        click.echo(f"Next: imgclf train --config {result.best_config} --out runs/best")


# ------------------------------------------------------------------------------------------- runs


def run_list(runs, folder: str, *, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs], indent=2))
        return
    if not runs:
        click.echo(f"No runs under {folder}.")
        return
    table = _table("run", "status", "model", "data", "epochs", "time", "best val acc", "test acc", "started",
                   right=("epochs", "time", "best val acc", "test acc"))  # fmt: skip
    for r in runs:
        epochs = f"{r.epochs}/{r.planned_epochs}" if r.planned_epochs else str(r.epochs)
        best = f"{r.best_val_accuracy:.4f} (ep {r.best_epoch})" if r.best_val_accuracy is not None else "-"
        status = f"[{STATUS_STYLE.get(r.status, 'white')}]{r.status}[/]"
        table.add_row(_escape(r.name), status, _escape(r.model or "-"), _escape(r.data or "-"), epochs, _duration(r.train_seconds),
                      best, _num(r.test_accuracy), _escape((r.started or "-")[:16].replace("T", " ")))  # fmt: skip
    _print(table)
    by_status = {s: sum(1 for r in runs if r.status == s) for s in STATUS_STYLE}
    click.echo(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in by_status.items() if n))


def comparison(result, *, diff_only: bool = False, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    names = [r.name for r in result.runs]
    table = _table("option", *names)
    rows = result.differences if diff_only else result.config
    for row in rows:
        cells = [_escape(_num(v)) for v in row.values]
        if row.differs:
            table.add_row(f"[bold yellow]* {_escape(row.key)}[/]", *(f"[bold yellow]{c}[/]" for c in cells))
        else:
            table.add_row(f"  {_escape(row.key)}", *cells)
    if rows:
        _print(table)
    differing = len(result.differences)
    verb = "option differs" if differing == 1 else "options differ"
    click.echo(f"{differing} {verb} (marked *)." if differing else "The configurations are the same.")
    metrics = _table("metric", *names, right=tuple(names))
    for name, values in result.metrics:
        shown = [_duration(v) if name == "train_seconds" else _num(v) for v in values]
        metrics.add_row(name.replace("_", " "), *shown)
    _print(metrics)
    if result.plot:
        click.echo(f"Curves: {result.plot}")
