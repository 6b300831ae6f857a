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
        base = eval(base, {"int": int, "float": float, "str": str, "None": None})
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
@click.option("--tta/--no-tta", default=None, help="score with / without test-time augmentation and show its effect [default: the model's setting]")
@click.option("--target-accuracy", default=0.99, show_default=True, type=float, help="accuracy the \"unsure\" threshold must reach on the answered images")
@click.option("--group-by", help="a metadata column (of a manifest) or 'group': accuracy and macro recall per subgroup")
@click.option("--tolerance", default=0.05, show_default=True, type=float, help="flag subgroups more than this below the overall figures")
@click.option("--no-robustness", is_flag=True, help="skip accuracy under corruptions")
@click.option("--robustness-limit", default=1000, show_default=True, help="run the corruptions on a seeded random subset of this many test images (0: all of them)")
@click.option("--no-explain", is_flag=True, help="skip Grad-CAM on misclassified images")
@click.option("--label-issues", is_flag=True, help="also find suspected label errors (trains cross-validated models: slower)")
def evaluate(run, data, split, tta, target_accuracy, group_by, tolerance, no_robustness, robustness_limit, no_explain, label_issues) -> None:
    """Metrics of a trained RUN on its held-out test split; files go to RUN/eval/.

    \b
    Also: calibration (temperature stored in the model), the confidence threshold for
    "unsure" answers, robustness, Grad-CAM, subgroups (--group-by), label issues
    (--label-issues); all in RUN/eval/report.html and RUN/model_card.md.
    """
    from . import api

    res = api.evaluate(
        run, data=data, split=split, tta=tta, target_accuracy=target_accuracy, group_by=group_by, tolerance=tolerance,
        robustness=not no_robustness, robustness_limit=robustness_limit, explain=not no_explain, label_issues=label_issues,
    )  # fmt: skip
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
    for line in res.summary_lines():
        click.echo(line)
    click.echo(f"\nReport: {res.report}\nModel card: {res.model_card}\nAll files: {res.eval_dir}")
    click.echo(f"Next: imgclf predict {run} path/to/images")


# ---------------------------------------------------------------------------- robustness, explain


def _severities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--severities {text!r}: give a comma-separated list of 1, 2, 3") from None


@cli.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--data", help="where the images are now, or new labelled data (default: the run's training data)")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--limit", type=int, help="use at most this many images (a fixed random subset)")
@click.option("--severities", default="1,2,3", show_default=True, help="comma-separated severities, each 1 (mild) to 3 (hard)")
@click.option("--tta", type=click.Choice(["none", "flip", "flip-translate"]), help="test-time augmentation [default: the model's setting]")
def robustness(run, data, split, limit, severities, tta) -> None:
    """Accuracy of RUN under corruptions (low light, contrast, noise, blur, JPEG, grayscale,
    crop/zoom, rotation, occlusion) at three severities; files go to RUN/eval/robustness.*."""
    from . import api

    rep = api.robustness(run, data=data, split=split, limit=limit, severities=_severities(severities), tta=tta)
    sev = rep["severities"]
    click.echo(f"{'corruption':<16}" + "".join(f"{'severity ' + str(s):>12}" for s in sev) + f"{'mean drop':>12}")
    for p in rep["per_corruption"]:
        accs = {x["severity"]: x["accuracy"] for x in rep["results"] if x["corruption"] == p["corruption"]}
        click.echo(f"{p['corruption']:<16}" + "".join(f"{accs[s]:>12.4f}" for s in sev) + f"{p['mean_relative_drop']:>12.1%}")
    w = rep["worst"]
    click.echo(
        f"\nclean accuracy {rep['clean_accuracy']:.4f} on {rep['n']:,} {rep['split']} images; mean relative drop "
        f"{rep['mean_relative_drop']:.1%}; worst: {w['corruption']} at severity {w['severity']} ({w['accuracy']:.4f})"
    )
    click.echo(f"Wrote robustness.json, robustness.csv, robustness.png to {Path(run) / 'eval'}")


@cli.command(context_settings=CONTEXT)
@click.argument("run")
@click.argument("images", nargs=-1, required=True)
@click.option("--class", "class_name", help="explain this class instead of the predicted one")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="folder for the overlays [default: RUN/eval/explain]")
def explain(run, images, class_name, out_dir) -> None:
    """Grad-CAM overlays: which parts of each image (files, folders, glob patterns) drove
    RUN's prediction; one PNG per image."""
    from . import api

    rows = api.explain(run, list(images), class_name=class_name, out_dir=out_dir)
    for r in rows:
        if "error" in r:
            click.echo(f"{r['path']}: error: {r['error']}")
            continue
        why = "" if r["explained"] == r["predicted"] else f"; explaining {r['explained']!r} ({r['explained_probability']:.3f})"
        click.echo(f"{r['path']}: {r['predicted']} ({r['probability']:.3f}){why} -> {r['overlay']}")
    errors = sum(1 for r in rows if "error" in r)
    click.echo(f"\nExplained {len(rows) - errors} image(s)" + (f", {errors} could not be read" if errors else "") + ".")


# -------------------------------------------------------------------------------------- predict


@cli.command(context_settings=CONTEXT)
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", "-k", default=3, show_default=True, help="how many labels to show per image")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write predictions to a .csv or .json file")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--limit", type=int, help="predict at most this many images")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "torch", "onnx", "onnx-int8"]),
              help="auto: the run's ONNX export when it matches the current weights, else PyTorch")
def predict(run, inputs, top_k, output, batch_size, limit, backend) -> None:
    """Labels for new images: files, folders, glob patterns (quote them) or builtin:NAME.

    RUN is a run directory, a model bundle folder or an exported .onnx file."""
    from . import api
    from .predict import builtin_inputs, expand_inputs, write_predictions

    if output and Path(output).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, not {Path(output).suffix or 'nothing'}")
    predictor = api.load(run, backend=backend)
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


@data.command("label-issues", context_settings=CONTEXT)
@click.argument("run")
@click.option("--folds", default=3, show_default=True, help="cross-validation folds (one model trained per fold)")
@click.option("--epochs", type=int, help="epochs per fold model [default: as long as RUN trained]")
@click.option("--data", help="where the run's images are now, if they moved")
@click.option("--show", default=20, show_default=True, help="print this many of the most suspicious images")
def data_label_issues(run, folds, epochs, data, show) -> None:
    """Training images of RUN whose label is probably wrong: confident learning on out-of-sample
    predictions of cross-validated models trained with RUN's configuration. Writes
    RUN/eval/label_issues.csv, most suspicious first."""
    from . import api

    rows = api.label_issues(run, folds=folds, epochs=epochs, data=data)
    for r in rows[:show]:
        click.echo(
            f"{r['rank']:>4}  {r['path']}  labelled {r['given_label']!r} ({r['given_label_probability']:.3f}), "
            f"looks like {r['suggested_label']!r} ({r['suggested_probability']:.3f})  [{r['split']}]"
        )
    more = f" (first {show} shown)" if len(rows) > show else ""
    click.echo(f"\n{len(rows)} suspected label issue(s){more}; wrote {Path(run) / 'eval' / 'label_issues.csv'}")


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


@bench.command("infer", context_settings=CONTEXT)
@click.argument("run")
@click.option("--backend", "backends", multiple=True, type=click.Choice(["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"]),
              help="time only these (repeatable) [default: every one available]")
@click.option("--runs", default=50, show_default=True, help="timed calls at batch 1 and end to end")
@click.option("--batch", default=32, show_default=True, help="batch size of the throughput measurement")
@click.option("--batch-runs", default=10, show_default=True, help="timed calls at that batch size")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def bench_infer_command(run, backends, runs, batch, batch_runs, as_json) -> None:
    """Prediction speed of RUN per backend (torch fp32/bf16, onnx fp32/int8): latency percentiles at
    batch 1, throughput at batch 32, and end-to-end latency from image bytes with the preprocessing share."""
    from .export.bench_infer import bench_infer, format_bench_infer

    result = bench_infer(run, backends=tuple(backends) or None, runs=runs, batch=batch, batch_runs=batch_runs)
    click.echo(json.dumps(result, indent=2) if as_json else format_bench_infer(result))


# --------------------------------------------------------------------------------------- export


@cli.command("export", context_settings=CONTEXT)
@click.argument("run")
@click.option("--format", "fmt", default="onnx", show_default=True, type=click.Choice(["onnx", "torchscript"]))
@click.option("--int8", is_flag=True, help="also write an int8 model (static quantization calibrated on training images)")
@click.option("--opset", type=int, help="ONNX opset version [default: the exporter's]")
@click.option("--allow-drop", type=float, help="accuracy points the int8 model may lose against fp32 [default: 1]")
@click.option("--data", help="where the run's images are now, if they moved")
@click.option("--limit", type=int, help="check on at most this many images per split (a fixed random subset)")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test"]), help="the images of the fp32 parity check")
def export_command(run, fmt, int8, opset, allow_drop, data, limit, split) -> None:
    """Export a trained RUN to RUN/export/ (ONNX or TorchScript), checked against PyTorch.

    \b
    Every export is compared with the PyTorch model on the run's validation images
    (export/parity.json); an fp32 export agreeing on fewer than 99.9% of them fails.
    --int8 reports the int8 model's test accuracy against fp32 and fails beyond --allow-drop.
    """
    from . import api
    from .export.export import ExportCheckFailed, format_export

    try:
        result = api.export(run, format=fmt, int8=int8, opset=opset, allow_drop=allow_drop, data=data, limit=limit, split=split)
    except ExportCheckFailed as exc:
        click.echo(format_export(exc.result))
        raise
    click.echo(format_export(result))
    click.echo(f"Next: imgclf predict {run} path/to/images   (uses the ONNX export)   |   imgclf bench infer {run}")


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
