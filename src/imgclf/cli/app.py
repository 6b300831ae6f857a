"""The `imgclf` command group and its entry point: a UserError is one line on stderr and exit 2.

Nothing imported here (or by the command modules) loads PyTorch, timm or scikit-learn, so
`imgclf --help` and the refusal of a mistyped option are quick; the API loads them when a
command runs (tests/cli/test_startup.py checks this).
"""

from __future__ import annotations

import sys

import click

from ..errors import UserError
from . import bench, cache, data, evaluate, export, models, predict, retrain, serve, train
from . import runs as runs_cli
from . import tune as tune_cli
from .options import CONTEXT


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="imgclf")
def cli() -> None:
    """imgclf: from a folder of labelled images to a trustworthy, fast image classifier.

    \b
    Start here:
      imgclf data check photos/            is the data healthy?
      imgclf train photos/ --out runs/a    train (folder, .zip, .csv/.jsonl manifest or builtin:digits)
      imgclf evaluate runs/a               metrics on the held-out test split
      imgclf predict runs/a new/*.jpg      labels for new images
    """


for _command in (
    train.train, train.lr_find, evaluate.evaluate, evaluate.robustness, evaluate.explain, predict.predict,
    export.export, data.data, models.models, bench.bench, cache.cache, serve.serve, serve.feedback, serve.monitor,
    retrain.retrain, tune_cli.tune, runs_cli.runs,
):  # fmt: skip
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit codes: 0 done, 1 `data check --strict` found problems, 2 a usage or user
    error (one line, no traceback), 130 interrupted."""
    try:
        cli.main(args=argv, prog_name="imgclf", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
