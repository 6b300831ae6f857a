"""Everything the CLI prints: summaries, tables and the data-check report.

Each function takes what an API function returned and writes it to stdout (rich tables where a
table helps); the commands hold no formatting of their own. rich is imported only when a table
is drawn, after the command has run.
"""

from __future__ import annotations

import json
from pathlib import Path

import click



def _table(*columns: str, right: tuple[str, ...] = ()):
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


def _print_table(table, width: int = 100) -> None:
    from rich.console import Console

    Console(width=max(width, Console().width)).print(table)


# ------------------------------------------------------------------------------- train, lr-find


def trained(result) -> None:
    cfg, sizes = result.config, result.split_sizes
    click.echo(f"\nTrained {cfg.model} for {result.epochs} epochs in {result.seconds:.0f}s ({result.precision}).")
    click.echo(
        f"Images read: {result.images_read:,} (skipped {result.images_skipped}); "
        f"train {sizes['train']:,} / val {sizes['val']:,} / test {sizes['test']:,}."
    )
    if result.best_val_accuracy is not None:
        click.echo(f"Best validation accuracy: {result.best_val_accuracy:.4f} (epoch {result.best_epoch}).")
    click.echo(f"Run directory: {result.run_dir}")
    click.echo(f"Next: imgclf evaluate {result.run_dir}")


def lr_found(result, data: str) -> None:
    click.echo(f"Suggested learning rate: {result.suggestion:.3g} (plot: {result.plot})")
    click.echo(f"Next: imgclf train {data} --lr {result.suggestion:.3g} ...  (or --lr auto to run this first)")


# ------------------------------------------------------------------- evaluate, robustness, explain


def evaluation(result, run: str) -> None:
    m = result.metrics
    click.echo(m["classification_report"])
    click.echo(f"{result.split} images: {m['n']:,}" + (f" (skipped {m['images_skipped']} unreadable)" if m["images_skipped"] else ""))
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
    for line in _evaluation_extras(result):
        click.echo(line)
    click.echo(f"\nReport: {result.report}\nModel card: {result.model_card}\nAll files: {result.eval_dir}")
    click.echo(f"Next: imgclf predict {run} path/to/images")


def _evaluation_extras(result) -> list[str]:
    """Calibration, the unsure threshold, TTA, subgroups, robustness, label issues, skipped sections."""
    m = result.metrics
    c, s = m["calibration"], m["selective"]
    fitted = f"fitted on {c['fitted_on_n']:,} validation images" if c["fitted_on"] == "val" else "kept (no validation split)"
    lines = [f"\ncalibration  temperature {c['temperature']:.3f} ({fitted}); ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}"]
    u = s["unsure_threshold"]
    if u is None:
        lines.append(f"unsure       no confidence threshold reaches {s['target_accuracy']:.2%} accuracy")
    else:
        lines.append(f"unsure       below confidence {u['threshold']:.4f}: answers {u['coverage']:.1%} of images at "
                     f"{u['accuracy']:.2%} accuracy (target {u['target_accuracy']:.2%})")  # fmt: skip
    if "tta_effect" in m:
        t = m["tta_effect"]
        lines.append(f"TTA          {t['mode']}: accuracy {t['accuracy_without']:.4f} without, {t['accuracy_with']:.4f} with "
                     f"({t['fixed']} fixed, {t['broken']} broken)")  # fmt: skip
    if "subgroups" in m:
        sg = m["subgroups"]
        lines.append(f"subgroups    by {sg['column']}: {len(sg['groups'])} groups, flagged: {', '.join(sg['flagged']) or 'none'}")
    if result.robustness:
        w = result.robustness["worst"]
        lines.append(f"robustness   mean relative drop {result.robustness['mean_relative_drop']:.1%}; worst {w['corruption']} "
                     f"severity {w['severity']} ({w['accuracy']:.4f})")  # fmt: skip
    if result.label_issues is not None:
        lines.append(f"label issues {len(result.label_issues)} suspected (label_issues.csv)")
    return lines + [f"{name:<12} {status}" for name, status in result.sections.items() if status != "done"]


def robustness(rep: dict, run: str) -> None:
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


def explanations(rows: list[dict]) -> None:
    for r in rows:
        if "error" in r:
            click.echo(f"{r['path']}: error: {r['error']}")
            continue
        why = "" if r["explained"] == r["predicted"] else f"; explaining {r['explained']!r} ({r['explained_probability']:.3f})"
        click.echo(f"{r['path']}: {r['predicted']} ({r['probability']:.3f}){why} -> {r['overlay']}")
    errors = sum(1 for r in rows if "error" in r)
    click.echo(f"\nExplained {len(rows) - errors} image(s)" + (f", {errors} could not be read" if errors else "") + ".")


# ------------------------------------------------------------------------------------- predict


def predictions(result) -> None:
    """The predictions as a table (unless they went to --output), then one summary line."""
    if result.output is None:
        from rich.markup import escape  # a file named "a[bold].jpg" prints as it is

        table = _table("image", "label", "probability", f"top {result.top_k}", "unsure")
        for p in result.predictions:
            d = p.to_dict()  # names that are not valid UTF-8 made printable
            if p.error:
                table.add_row(escape(d["path"]), "[red]error[/red]", "", escape(d["error"]), "")
            else:
                unsure = {True: "yes", False: "no"}.get(p.unsure, "")  # blank: the run stored no threshold
                top = ", ".join(f"{t['label']} {t['probability']:.2f}" for t in d["top"])
                table.add_row(escape(d["path"]), escape(d["label"]), f"{p.probability:.3f}", escape(top), unsure)
        _print_table(table)
    errors, n = result.errors, result.total
    if result.only_unsure:
        summary = f"\nListed {result.unsure} unsure image(s) of {n - errors} predicted"
    else:
        summary = f"\nPredicted {n - errors} image(s)"
    click.echo(summary + (f", {errors} could not be read" if errors else "") + (f"; wrote {result.output}" if result.output else "") + ".")


# ---------------------------------------------------------------------------------------- data


def data_check(report: dict, *, as_json: bool = False) -> None:
    click.echo(json.dumps(report, indent=2) if as_json else check_report(report))


def problem_count(report: dict) -> None:
    errors = sum(1 for p in report["problems"] if p["severity"] == "error")
    click.echo(f"{len(report['problems'])} problem(s) found ({errors} errors).", err=True)


def check_report(report: dict) -> str:
    """The `imgclf data check` report as plain-text tables: the data layer's own text
    (:func:`imgclf.data.audit.format_check`, also part of the Python API), so there is one."""
    from ..data.audit_text import format_check

    return format_check(report)


def label_issues(rows: list[dict], run: str, show: int) -> None:
    for r in rows[:show]:
        click.echo(
            f"{r['rank']:>4}  {r['path']}  labelled {r['given_label']!r} ({r['given_label_probability']:.3f}), "
            f"looks like {r['suggested_label']!r} ({r['suggested_probability']:.3f})  [{r['split']}]"
        )
    more = f" (first {show} shown)" if len(rows) > show else ""
    click.echo(f"\n{len(rows)} suspected label issue(s){more}; wrote {Path(run) / 'eval' / 'label_issues.csv'}")


def cache_cleared(root: Path, freed: int) -> None:
    click.echo(f"Cleared {root} ({freed / 1e6:.1f} MB freed).")


# ------------------------------------------------------------------------------ models, bench


def models(listing, img_size: int | None, *, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(listing.rows, indent=2))
        return
    table = _table("model", "from", "params", "GFLOPs", "size", "notes", right=("params", "GFLOPs", "size"))
    for r in listing.rows:
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else ""
        gflops = f"{r['gflops']:.3f}" if r["gflops"] is not None else ""
        table.add_row(r["name"], r["source"], params, gflops, str(img_size or r["default_img_size"]), r.get("error") or r["description"])
    _print_table(table, width=120)
    click.echo(f"\n{len(listing.rows)} model(s); more with --filter (timm has {listing.timm_total}).")


def bench_train(r: dict, *, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    m, v = r["machine"], r["versions"]
    rows = [
        ("model", f"{r['model']} at {r['img_size']}px, batch {r['batch_size']}, {r['classes']} classes"
                  + (f", preset {r['preset']}" if r.get("preset") else "")),
        ("augmentation", ", ".join(r.get("augmentation", [])) or "none"),
        ("device", f"{r['device_name']} ({r['device']}), {r['precision']}: {r['precision_reason']}"),
        ("machine", f"{m['cpu']}; {m['cpus_available']} of {m['cpu_count']} cores usable, {m['torch_threads']} torch threads"),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items())),
        ("data", f"{r['images']:,} training images, prepared in {r['prepare_seconds']:.2f} s (not timed below)"),
        ("steps", f"{r['warmup']} warm-up, {r['steps']} timed"),
        ("pipeline", f"{r['pipeline_images_per_second']:,.0f} img/s (gather + augment + normalise)"),
        ("train", f"{r['train_images_per_second']:,.0f} img/s; step {1e3 * r['step_seconds_mean']:.2f} "
                  f"+- {1e3 * r['step_seconds_std']:.2f} ms"),
        ("pipeline/train", f"{r['pipeline_to_train_ratio']:.1f}x (the pipeline alone takes "
                           f"{100 / r['pipeline_to_train_ratio']:.0f}% of a training step's time)"),
        ("FLOPs/image", f"{r['flops_per_image'] / 1e6:,.1f} M forward, {r['train_flops_per_image'] / 1e6:,.1f} M forward+backward"),
        ("achieved", f"{r['achieved_tflops']:.3f} TFLOP/s"),
        ("matmul peak", f"{r['matmul_peak_tflops']:.3f} TFLOP/s ({r['matmul_peak_dtype']}, {r['matmul_peak_size']}^2, best of 10)"),
        ("of peak", f"{100 * r['peak_fraction']:.1f}%"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    click.echo("\n".join(f"{k:<{width}}  {val}" for k, val in rows))


def bench_infer(result: dict, *, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    m, v, batch = result["machine"], result["versions"], result["backends"][0]["throughput_batch"]
    lines = [
        f"model     {result['architecture']} at {result['img_size']}px, {result['classes']} classes ({result['run']})",
        f"machine   {m['cpu']}, {m['cores_available']} cores usable ({', '.join(m['int8_and_bf16_instructions']) or 'no VNNI/BF16'}); "
        f"threads: torch {m['torch_threads']}, onnxruntime {m['onnxruntime_threads']}",
        f"versions  {', '.join(f'{k} {val}' for k, val in v.items())}",
        f"runs      {result['runs']} timed at batch 1 (after {result['warmup']} warm-up), {result['batch_runs']} at batch "
        f"{batch}; end to end from {result['end_to_end_images']}; no TTA",
        "",
        f"{'backend':<11} {'batch 1 p50 / p95 / p99 ms':>27} {'batch ' + str(batch) + ' img/s':>18} "
        f"{'vs torch':>8} {'end-to-end p50 / p95 ms':>24} {'preprocess':>10}",
    ]  # fmt: skip
    for b in result["backends"]:
        lat, e2e, tp = b["latency_ms_batch1"], b["end_to_end_ms"], b["throughput_images_per_s"]
        ratio = f"{b['throughput_vs_torch_fp32']:.2f}x" if "throughput_vs_torch_fp32" in b else ""
        lines.append(
            f"{b['backend']:<11} {lat['p50']:>9.2f} / {lat['p95']:>6.2f} / {lat['p99']:>6.2f} "
            f"{tp['mean']:>10.1f} +- {tp['std']:<5.1f} {ratio:>8} {e2e['p50']:>13.2f} / {e2e['p95']:>7.2f} "
            f"{100 * b['preprocess_share']:>9.0f}%"
        )  # fmt: skip
    lines += [f"{s['backend']:<11} skipped: {s['reason']}" for s in result["skipped"]]
    click.echo("\n".join(lines))


# -------------------------------------------------------------------------------------- export


def exported(result, run: str | None = None) -> None:
    """Files, the parity check and (with --int8) the accuracy and speed check; ``run`` adds the next steps."""
    p = result.parity
    lines = [f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)" if path.exists() else f"wrote {path}" for path in result.files.values()]
    info = p.get("export", {})
    if info:
        lines.append(f"exporter: {info.get('exporter', '')}" + (f", opset {info['opset']}" if info.get("opset") else "")
                     + (f" (fell back: {info['exporter_fallback_reason']})" if info.get("exporter_fallback_reason") else ""))  # fmt: skip
    f = p.get("fp32")
    if f:
        lines.append(
            f"parity vs PyTorch fp32 on {f['images']} {f['split']} images: top-1 agreement {f['top1_agreement']:.2%} "
            f"({f['disagreements']} differ), max |probability difference| {f['max_abs_prob_diff']:.2e}: {_verdict_fp32(f)}"
        )
    q = p.get("int8")
    if q:
        drop = q["accuracy_drop_points"]
        change = f"{drop:.2f} points lost" if drop >= 0 else f"{-drop:.2f} points gained"
        verdict = "ok" if q["passed"] else f"FAILED (at most {q['allowed_drop_points']:g} allowed)"
        lines.append(
            f"int8 on {q['vs_fp32']['images']} {q['split']} images: accuracy {q['accuracy_int8']:.2%} vs fp32 {q['accuracy_fp32']:.2%} "
            f"({change}: {verdict}); agrees with fp32 on {q['vs_fp32']['top1_agreement']:.2%}"
        )
        s = q["speed"]
        lines.append(f"int8 speed: {s['speedup']:.2f}x fp32 on a batch of {s['batch']} "
                     "(quick check; `imgclf bench infer` measures properly)")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(f"parity report: {result.export_dir / 'parity.json'}")
    if run is not None:
        lines.append(f"Next: imgclf predict {run} path/to/images   (uses the ONNX export)   |   imgclf bench infer {run}")
    click.echo("\n".join(lines))


def _verdict_fp32(f: dict) -> str:
    if f["passed"]:
        return "ok"
    from ..export.parity import MIN_FP32_AGREEMENT  # loaded already: the export just ran

    return f"FAILED (needs {MIN_FP32_AGREEMENT:.1%})"
