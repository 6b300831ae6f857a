"""`imgclf runs [DIR]` and `imgclf runs compare A B ...`: the runs registry."""

from __future__ import annotations

import click

from .. import api_tune
from . import render_runs
from .options import CONTEXT


class _ListByDefault(click.Group):
    """A group whose first argument may be a folder: `imgclf runs [DIR]` means `imgclf runs list [DIR]`."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ListByDefault, context_settings=CONTEXT)
def runs() -> None:
    """The runs under a folder, and runs side by side.

    \b
    Examples:
      imgclf runs                        every run under runs/ (status, model, metrics)
      imgclf runs experiments/           ... under another folder
      imgclf runs compare runs/a runs/b --plot curves.png
    """


@runs.command("list", context_settings=CONTEXT)
@click.argument("folder", default="runs", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the runs as JSON")
def list_runs(folder, as_json) -> None:
    """Every run under FOLDER (default: runs), recursively: model, data, epochs, training time,
    status (running, finished, interrupted) and key metrics."""
    render_runs.run_list(api_tune.list_runs(folder), folder, as_json=as_json)


@runs.command("compare", context_settings=CONTEXT)
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN...")
@click.option("--plot", type=click.Path(dir_okay=False), help="also draw the runs' per-epoch curves together into this .png file")
@click.option("--diff-only", is_flag=True, help="show only the options whose values differ")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def compare(run_dirs, plot, diff_only, as_json) -> None:
    """Configurations and metrics of RUN... side by side; options that differ are marked (*)."""
    render_runs.comparison(api_tune.compare_runs(list(run_dirs), plot=plot), diff_only=diff_only, as_json=as_json)
