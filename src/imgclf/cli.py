"""The `imgclf` command line: parses arguments, calls the API, prints. No logic of its own."""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

import click

from .errors import UserError
from .train.config import TrainConfig

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


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


# ---------------------------------------------------------------------------------------- train


def _option_for(f) -> click.Option:
    """A click option generated from a TrainConfig field, so defaults and help live in one place."""
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    if f.type in (bool, "bool"):
        return click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=None, help=f"{help_text} [default: {'on' if f.default else 'off'}]")
    base = f.type
    if isinstance(base, str):
        base = eval(base, {"int": int, "float": float, "str": str, "None": None})  # noqa: S307 - our own annotations
    args = [a for a in typing.get_args(base) if a is not type(None)] if isinstance(base, types.UnionType) else [base]
    show = "none" if f.default is None else f.default
    kind = str if f.name == "lr" else args[0]  # a number or "auto"
    return click.Option([flag, f.name], type=kind, default=None, help=f"{help_text} [default: {show}]")


def _train_command() -> click.Command:
    params = [
        click.Argument(["data"], required=False),
        click.Option(["--out", "-o"], help="the run directory to create, e.g. runs/NAME [required]"),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False), help="read options from a config.yaml (flags given here override it)"),
        click.Option(["--overwrite"], is_flag=True, help="replace an existing run directory at --out"),
        click.Option(["--resume", "resume"], type=click.Path(file_okay=False), help="continue the interrupted run RUN from its last checkpoint (with --epochs N on a finished run: N more epochs)"),
        *[_option_for(f) for f in TrainConfig.options()],
    ]
    return click.Command("train", params=params, callback=_train, help=_TRAIN_HELP, context_settings=CONTEXT)


_TRAIN_HELP = """Train a classifier on DATA and write a run directory.

\b
DATA is a folder (one sub-folder per class, optionally under train/ val/ test/),
a .zip of such a folder, a .csv/.jsonl manifest (path,label[,split,group,...])
or builtin:digits.

\b
Example:
  imgclf train photos/ --model resnet18 --epochs 10 --img-size 128 --out runs/photos
"""


def _train(data, out, config_file, overwrite, resume, **options) -> None:
    from . import api

    given = {k: v for k, v in options.items() if v is not None}  # only flags actually given override
    if out:
        given["out"] = out
    result = api.train(data, config=config_file, overwrite=overwrite, resume=resume, **given)
    cfg = result.config
    sizes = result.split_sizes
    click.echo(f"\nTrained {cfg.model} for {result.epochs} epochs in {result.seconds:.0f}s ({result.precision}).")
    click.echo(
        f"Images read: {result.images_read:,} (skipped {result.images_skipped}); "
        f"train {sizes['train']:,} / val {sizes['val']:,} / test {sizes['test']:,}."
    )
    if result.best_val_accuracy is not None:
        click.echo(f"Best validation accuracy: {result.best_val_accuracy:.4f} (epoch {result.best_epoch}).")
    click.echo(f"Run directory: {result.run_dir}")
    click.echo(f"Next: imgclf evaluate {result.run_dir}")


cli.add_command(_train_command())


@cli.command("lr-find", context_settings=CONTEXT)
@click.argument("data")
@click.option("--plot", default="lr_find.png", show_default=True, type=click.Path(dir_okay=False), help="where to save the loss-against-lr plot")
@click.option("--steps", default=100, show_default=True, help="steps of the range test")
@click.option("--start-lr", default=1e-7, show_default=True)
@click.option("--end-lr", default=10.0, show_default=True)
def lr_find_command(data, plot, steps, start_lr, end_lr, **options) -> None:
    """The learning-rate range test: a suggested --lr for `imgclf train` with the same options."""
    from .train.lr_find import lr_find

    cfg = TrainConfig(data=data, out="-", **{k: v for k, v in options.items() if v is not None and k != "lr"})
    cfg.validate()
    result = lr_find(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, plot=plot)
    click.echo(f"Suggested learning rate: {result.suggestion:.3g} (plot: {result.plot})")
    click.echo(f"Next: imgclf train {data} --lr {result.suggestion:.3g} ...  (or --lr auto to run this first)")


for _f in TrainConfig.options():
    if _f.name != "lr":
        lr_find_command.params.append(_option_for(_f))


# ------------------------------------------------------------------------------------- evaluate


@cli.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--data", help="where the images are now, or new labelled data (default: the run's training data)")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
def evaluate(run, data, split) -> None:
    """Metrics of a trained RUN on its held-out test split; files go to RUN/eval/."""
    from . import api

    res = api.evaluate(run, data=data, split=split)
    m = res.metrics
    click.echo(m["classification_report"])
    click.echo(f"{split} images: {m['n']:,}" + (f" (skipped {m['images_skipped']} unreadable)" if m["images_skipped"] else ""))
    click.echo(f"accuracy {m['accuracy']:.4f}" + "".join(f"  {k} {m[k]:.4f}" for k in ("top3_accuracy", "top5_accuracy") if k in m))
    click.echo(f"macro    precision {m['macro_precision']:.4f}  recall {m['macro_recall']:.4f}  F1 {m['macro_f1']:.4f}")
    click.echo(f"weighted precision {m['weighted_precision']:.4f}  recall {m['weighted_recall']:.4f}  F1 {m['weighted_f1']:.4f}")
    if "binary" in m:
        b = m["binary"]
        click.echo(
            f"binary   positive class {b['positive_class']!r}: precision {b['precision']:.4f}  recall (sensitivity) "
            f"{b['recall']:.4f}  specificity {b['specificity']:.4f}  F1 {b['f1']:.4f}"
            + (f"  ROC AUC {b['roc_auc']:.4f}  average precision {b['average_precision']:.4f}" if "roc_auc" in b else "")
        )
    click.echo(f"\nWrote metrics.json, confusion_matrix.csv/.png, per_class.csv, predictions.csv to {res.eval_dir}")
    click.echo(f"Next: imgclf predict {run} path/to/images")


# -------------------------------------------------------------------------------------- predict


@cli.command(context_settings=CONTEXT)
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", default=3, show_default=True, help="how many labels to show per image")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write predictions to a .csv or .json file")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--limit", type=int, help="predict at most this many images")
def predict(run, inputs, top_k, output, batch_size, limit) -> None:
    """Labels for new images: files, folders, glob patterns (quote them) or builtin:NAME."""
    from . import api
    from .predict import builtin_inputs, expand_inputs, write_predictions

    if output and Path(output).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, not {Path(output).suffix or 'nothing'}")
    predictor = api.load(run)
    items: list = []
    for spec in inputs:
        items += builtin_inputs(spec, limit) if spec.startswith("builtin:") else expand_inputs([spec])
    items = items[:limit] if limit else items
    preds = predictor.predict(items, top_k=top_k, batch_size=batch_size)
    errors = sum(1 for p in preds if p.error)
    if output:
        write_predictions(Path(output), preds)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False)
        for col in ("image", "label", "probability", f"top {top_k}"):
            table.add_column(col)
        for p in preds:
            if p.error:
                table.add_row(p.path, "[red]error[/red]", "", p.error)
            else:
                table.add_row(p.path, p.label, f"{p.probability:.3f}", ", ".join(f"{lab} {pr:.2f}" for lab, pr in p.top))
        Console(width=max(100, Console().width)).print(table)
    click.echo(
        f"\nPredicted {len(preds) - errors} image(s)" + (f", {errors} could not be read" if errors else "")
        + (f"; wrote {output}" if output else "") + "."
    )


# ----------------------------------------------------------------------------------------- data


@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Inspect datasets."""


@data.command("check", context_settings=CONTEXT)
@click.argument("data")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--strict", is_flag=True, help="exit with code 1 when problems are found")
@click.option("--group-column", help="manifest column whose values must stay within one split")
@click.option("--seed", default=0, show_default=True, help="the split seed (as in imgclf train) for the leakage check")
def data_check(data, as_json, strict, group_column, seed) -> None:
    """Health of a dataset: class balance, unreadable files, duplicates and leakage, sizes, modes."""
    from . import api
    from .data.audit import format_check

    report = api.check_data(data, group_column=group_column, seed=seed)
    click.echo(json.dumps(report, indent=2) if as_json else format_check(report))
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    if strict and report["problems"]:
        click.echo(f"{len(report['problems'])} problem(s) found ({len(errors)} errors).", err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------------------- cache


@cli.group(context_settings=CONTEXT)
def cache() -> None:
    """The decoded-image cache (default: $IMGCLF_CACHE_DIR or ~/.cache/imgclf)."""


@cache.command("clear", context_settings=CONTEXT)
@click.option("--cache-dir", help="the cache folder to clear")
def cache_clear(cache_dir) -> None:
    """Delete all decoded images; the next run decodes again."""
    from .data.cache import clear_cache

    root, freed = clear_cache(cache_dir)
    click.echo(f"Cleared {root} ({freed / 1e6:.1f} MB freed).")


# --------------------------------------------------------------------------------------- models


@cli.command(context_settings=CONTEXT)
@click.option("--filter", "filter_text", help="substring or glob of model names, e.g. resnet or 'vit_*'")
@click.option("--img-size", type=int, help="input size for the FLOPs (default: each model's native size)")
@click.option("--limit", default=50, show_default=True, help="compute statistics for at most this many models")
@click.option("--json", "as_json", is_flag=True)
def models(filter_text, img_size, limit, as_json) -> None:
    """Architectures `imgclf train --model` accepts: compact nets and timm's zoo."""
    from rich.console import Console
    from rich.table import Table

    from .models.factory import list_models

    rows = list_models(filter_text, img_size=img_size, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("model", "from", "params", "GFLOPs", "size", "notes"):
        table.add_column(col, justify="right" if col in ("params", "GFLOPs", "size") else "left")
    for r in rows:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else ""
        gflops = f"{r['gflops']:.3f}" if r["gflops"] is not None else ""
        table.add_row(r["name"], r["source"], params, gflops, str(img_size or r["default_img_size"]), r.get("error") or r["description"])
    Console(width=max(120, Console().width)).print(table)
    click.echo(f"\n{len(rows)} model(s); more with --filter (timm has {len(__import__('timm').list_models())}).")


# ---------------------------------------------------------------------------------------- bench


@cli.group(context_settings=CONTEXT)
def bench() -> None:
    """Measure speed on this machine."""


@bench.command("train", context_settings=CONTEXT)
@click.argument("data")
@click.option("--model", default="simple_cnn", show_default=True)
@click.option("--img-size", type=int, help="input size (default: the model's native size)")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--steps", default=20, show_default=True, help="timed steps (after warm-up)")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16"]))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def bench_train_command(data, model, img_size, batch_size, steps, precision, device, as_json) -> None:
    """Images per second of the input pipeline and of training, FLOPs per image, achieved FLOP/s
    and the fraction of this device's matrix-product peak (measured in the same run)."""
    from .train.bench import bench_train, format_bench

    result = bench_train(
        data, model=model, img_size=img_size, batch_size=batch_size, steps=steps, precision=precision, device=device
    )
    click.echo(json.dumps(result, indent=2) if as_json else format_bench(result))


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
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


if __name__ == "__main__":
    main()
