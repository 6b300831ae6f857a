"""``RUN/eval/report.html``: one self-contained page a stakeholder can open (no network, no
files beside it: every figure is embedded as a base64 PNG).

Each section is a small function returning an HTML fragment; :func:`build_report` strings them
together. Every value from the run (class names, paths) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from ..runs import atomic_write_text

# (id, title) in page order; the tests look for these ids.
SECTIONS = (
    ("summary", "Summary"),
    ("data", "Data"),
    ("training", "Training curves"),
    ("metrics", "Metrics"),
    ("per-class", "Per-class results"),
    ("confusion", "Confusion matrix"),
    ("calibration", "Calibration"),
    ("selective", "Selective prediction"),
    ("tta", "Test-time augmentation"),
    ("robustness", "Robustness"),
    ("subgroups", "Subgroups"),
    ("gradcam", "Grad-CAM on misclassified images"),
    ("top-losses", "Highest-loss test images"),
    ("label-issues", "Label issues"),
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c9cfdb}
nav{padding:8px 32px;background:#e9ecf1;font-size:13px}nav a{margin-right:12px;color:#2b4c8c;text-decoration:none}
main{padding:8px 32px 40px;max-width:1150px}section{background:#fff;border-radius:8px;padding:14px 20px;margin:16px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}h2{font-size:18px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #e3e6eb;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f2f5}tr.flag td{background:#fde8e8}
img{max-width:100%;height:auto;margin:6px 0}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#f0f3f8;border-radius:6px;padding:10px 14px;min-width:150px}.card b{display:block;font-size:20px}
.card span{font-size:12px;color:#5a6272}.pair{display:flex;gap:24px;align-items:flex-start}.pair img{width:49%}
.note{color:#6b7280;font-style:italic}pre{font-size:12px;background:#f6f7f9;padding:8px}
"""


def write_report(path: Path, context: dict) -> Path:
    """Build the report from the evaluation ``context`` (see :func:`evaluate`) and write it."""
    atomic_write_text(path, build_report(context, path.parent))
    return path


def build_report(ctx: dict, eval_dir: Path) -> str:
    m = ctx["metrics"]
    run = ctx["run"]
    builders = {
        "summary": _summary, "data": _data, "training": _training, "metrics": _metrics, "per-class": _per_class,
        "confusion": _confusion, "calibration": _calibration, "selective": _selective, "tta": _tta,
        "robustness": _robustness, "subgroups": _subgroups, "gradcam": _gradcam, "top-losses": _top_losses,
        "label-issues": _label_issues,
    }  # fmt: skip
    body = "".join(
        f'<section id="{sid}"><h2>{title}</h2>{builders[sid](ctx, eval_dir)}</section>' for sid, title in SECTIONS
    )
    nav = "".join(f'<a href="#{sid}">{title}</a>' for sid, title in SECTIONS)
    subtitle = (
        f"{_e(ctx['meta'].architecture)} on {_e(m['data'])}: {m['split']} split, {m['n']:,} images. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}."
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>imgclf report: {_e(run.root.name)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f"<header><h1>Evaluation report: {_e(run.root.name)}</h1><p>{subtitle}</p></header><nav>{nav}</nav>"
        f"<main>{body}</main></body></html>\n"
    )


# ------------------------------------------------------------------------------------ helpers


def _e(value) -> str:
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return f'<p class="note">{_e(path.name)} was not produced.</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _table(header: list[str] | None, rows: list[list], flags: list[bool] | None = None) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join(
        f'<tr{" class=flag" if flags and flags[i] else ""}>' + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _section_note(ctx: dict, name: str) -> str | None:
    status = ctx["sections"].get(name)
    return None if status in (None, "done") else status


# ----------------------------------------------------------------------------------- sections


def _summary(ctx: dict, _dir: Path) -> str:
    m, cal, sel = ctx["metrics"], ctx["calibration"], ctx["selective"]
    lo, hi = m["accuracy_ci95"]
    cards = [
        _card(_pct(m["accuracy"]), f"accuracy on {m['n']:,} {m['split']} images (95% CI {_pct(lo)} to {_pct(hi)})"),
        _card(f"{m['macro_f1']:.3f}", "macro F1"),
        _card(f"{cal['ece_after']:.3f}", f"calibration error (ECE; {cal['ece_before']:.3f} before scaling)"),
    ]
    u = sel["unsure_threshold"]
    if u is not None:
        cards.append(_card(_pct(u["coverage"]), f"answered at {_pct(u['target_accuracy'])} target accuracy (rest flagged unsure)"))
    rob = ctx["robustness"]
    if rob:
        cards.append(_card(_pct(rob["mean_relative_drop"]), "mean relative accuracy drop under corruptions"))
    if "subgroups" in m:
        sg = m["subgroups"]
        cards.append(_card(str(len(sg["flagged"])), f"{sg['column']} subgroups flagged of {len(sg['groups'])}"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _data(ctx: dict, _dir: Path) -> str:
    path = ctx["run"].data_report
    if not path.exists():
        return _note("No data_report.json in this run.")
    rep = json.loads(path.read_text(encoding="utf-8"))
    sizes = rep.get("split_sizes", {})
    facts = [
        ["source", rep.get("source", {}).get("uri", "")],
        ["images read", f"{rep.get('images_read', 0):,}"],
        ["images skipped (unreadable)", f"{rep.get('images_skipped', 0):,}"],
        ["classes", f"{len(rep.get('classes', []))}"],
        ["split", f"train {sizes.get('train', 0):,} / val {sizes.get('val', 0):,} / test {sizes.get('test', 0):,} "
                  f"({rep.get('split_method', '')})"],
        ["imbalance (largest / smallest class)", f"{rep.get('imbalance_ratio', 1.0):.2f}"],
        ["metadata columns", ", ".join(rep.get("metadata_columns") or []) or "none"],
    ]
    counts = rep.get("class_counts", {})
    per_split = rep.get("split_class_counts", {})
    rows = [[c, counts[c], *(per_split.get(s, {}).get(c, 0) for s in ("train", "val", "test"))] for c in counts]
    return f'<div class="pair">{_table(None, facts)}{_table(["class", "images", "train", "val", "test"], rows)}</div>'


def _training(ctx: dict, eval_dir: Path) -> str:
    if not (eval_dir / "training_curves.png").exists():
        return _note("No metrics.jsonl in this run: no training curves.")
    cfg = ctx["config"]
    keys = ("model", "epochs", "img_size", "batch_size", "lr", "optimizer", "schedule", "preset")
    settings = ", ".join(f"{k} {cfg[k]}" for k in keys if cfg.get(k) is not None)
    return f"<p>{_e(settings)}</p>" + _img(eval_dir / "training_curves.png", "loss and accuracy per epoch")


def _metrics(ctx: dict, _dir: Path) -> str:
    m = ctx["metrics"]
    rows = [["accuracy", f"{m['accuracy']:.4f}"]]
    rows += [[f"top-{k} accuracy", f"{m[f'top{k}_accuracy']:.4f}"] for k in (3, 5) if f"top{k}_accuracy" in m]
    rows += [["log loss", f"{m['log_loss']:.4f}"]]
    avg = _table(
        ["average", "precision", "recall", "F1"],
        [[a, f"{m[f'{a}_precision']:.4f}", f"{m[f'{a}_recall']:.4f}", f"{m[f'{a}_f1']:.4f}"] for a in ("macro", "micro", "weighted")],
    )
    extra = ""
    if "binary" in m:
        b = m["binary"]
        extra = _table(["positive class " + b["positive_class"], ""], [
            ["precision", f"{b['precision']:.4f}"], ["recall (sensitivity)", f"{b['recall']:.4f}"],
            ["specificity", f"{b['specificity']:.4f}"], ["F1", f"{b['f1']:.4f}"],
        ] + ([["ROC AUC", f"{b['roc_auc']:.4f}"], ["average precision", f"{b['average_precision']:.4f}"]]
             if "roc_auc" in b else []))  # fmt: skip
    skipped = f"{m['images_skipped']} unreadable images skipped. " if m["images_skipped"] else ""
    tta = f"Test-time augmentation: {m['tta']}. " if m["tta"] != "none" else ""
    return (
        f"<p>{_e(skipped + tta)}Probabilities are calibrated (temperature {m['temperature']:.3f}).</p>"
        + _table(["metric", "value"], rows) + avg + extra
        + f"<details><summary>classification report</summary><pre>{_e(m['classification_report'])}</pre></details>"
    )


def _per_class(ctx: dict, _dir: Path) -> str:
    rows = ctx["metrics"]["per_class"]
    macro = ctx["metrics"]["macro_recall"]
    flags = [r["recall"] < macro - 0.05 for r in rows]
    return "<p>Rows in red: recall more than 5 points below the macro average.</p>" + _table(
        ["class", "precision", "recall", "F1", "support"],
        [[r["class"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", r["support"]] for r in rows],
        flags,
    )


def _confusion(ctx: dict, eval_dir: Path) -> str:
    pairs = ctx["metrics"]["most_confused"]
    table = (
        _table(["true", "predicted as", "images", "share of true class"],
               [[p["true"], p["predicted"], p["count"], _pct(p["rate"])] for p in pairs])
        if pairs else _note("No confusions: every image was classified correctly.")
    )  # fmt: skip
    return (
        '<div class="pair">' + _img(eval_dir / "confusion_matrix.png", "confusion matrix, counts")
        + _img(eval_dir / "confusion_matrix_normalized.png", "confusion matrix, row-normalised") + "</div>"
        + "<h3>Most confused pairs</h3>" + table
    )


def _calibration(ctx: dict, eval_dir: Path) -> str:
    c = ctx["calibration"]
    if c["fitted_on"] == "val":
        how = (f"Temperature scaling fitted on the validation split ({c['fitted_on_n']:,} images): T = {c['temperature']:.3f}, "
               "stored in model/model.json so predict, export and serve return calibrated probabilities.")  # fmt: skip
    else:
        how = (f"No validation split: the temperature was not refitted (kept T = {c['temperature']:.3f}). "
               "Train with a validation split (--val-fraction > 0) to calibrate.")  # fmt: skip
    rows = [
        ["expected calibration error (ECE)", f"{c['ece_before']:.4f}", f"{c['ece_after']:.4f}"],
        ["negative log-likelihood", f"{c['nll_before']:.4f}", f"{c['nll_after']:.4f}"],
    ]
    return f"<p>{_e(how)}</p>" + _table(["on the evaluated split", "before (T = 1)", "after"], rows) + _img(
        eval_dir / "reliability.png", "reliability diagram before and after temperature scaling"
    )


def _selective(ctx: dict, eval_dir: Path) -> str:
    s = ctx["selective"]
    u = s["unsure_threshold"]
    if u is None:
        text = f"No confidence threshold reaches {_pct(s['target_accuracy'])} accuracy on the {s['chosen_on']} split."
    else:
        where = "the validation split" if u["chosen_on"] == "val" else "the test split itself (no validation split: optimistic, not stored)"
        text = (
            f"To reach {_pct(u['target_accuracy'])} accuracy, answer only when the top probability is at least "
            f"{u['threshold']:.4f} (chosen on {where}). On the evaluated split this answers {_pct(u['coverage'])} "
            f"of the images with accuracy {_pct(u['accuracy'])}; the rest are flagged \"unsure\" for a person."
        )
    return f"<p>{_e(text)}</p>" + _img(eval_dir / "selective.png", "accuracy against coverage")


def _tta(ctx: dict, _dir: Path) -> str:
    t = ctx["metrics"].get("tta_effect")
    if t is None:
        return _note("Not used (the model predicts without TTA); `imgclf evaluate RUN --tta` shows its effect.")
    rows = [
        ["accuracy", f"{t['accuracy_without']:.4f}", f"{t['accuracy_with']:.4f}"],
        ["log loss", f"{t['log_loss_without']:.4f}", f"{t['log_loss_with']:.4f}"],
    ]
    return (
        _table(["", "without TTA", f"with TTA ({t['mode']})"], rows)
        + f"<p>{t['changed']} predictions changed: {t['fixed']} fixed, {t['broken']} broken.</p>"
    )


def _robustness(ctx: dict, eval_dir: Path) -> str:
    rob = ctx["robustness"]
    if rob is None:
        return _note(_section_note(ctx, "robustness") or "Not run.")
    rows = [[p["corruption"], _pct(p["mean_accuracy"]), _pct(p["mean_relative_drop"])] for p in rob["per_corruption"]]
    w = rob["worst"]
    return (
        f"<p>Clean accuracy {_pct(rob['clean_accuracy'])} on {rob['n']:,} {_e(rob['split'])} images; mean relative drop "
        f"under corruptions {_pct(rob['mean_relative_drop'])}. Worst: {_e(w['corruption'])} at severity {w['severity']} "
        f"({_pct(w['accuracy'])}).</p>"
        + _table(["corruption", "mean accuracy (severities)", "mean relative drop"], rows)
        + _img(eval_dir / "robustness.png", "accuracy per corruption and severity")
    )


def _subgroups(ctx: dict, eval_dir: Path) -> str:
    sg = ctx["metrics"].get("subgroups")
    if sg is None:
        return _note("Not run; `imgclf evaluate RUN --group-by COLUMN` (a metadata column of a manifest) adds it.")
    o = sg["overall"]
    rows = [[g["group"], g["n"], _pct(g["accuracy"]), f"{100 * g['accuracy_gap']:+.2f}", _pct(g["macro_recall"]),
             f"{100 * g['macro_recall_gap']:+.2f}", ("FLAGGED" if g["flagged"] else "") + (" few images" if g["few_samples"] else "")]
            for g in sg["groups"]]  # fmt: skip
    return (
        f"<p>By <b>{_e(sg['column'])}</b>: overall accuracy {_pct(o['accuracy'])}, macro recall {_pct(o['macro_recall'])}. "
        f"Subgroups more than {100 * sg['tolerance']:.1f} points below either are flagged.</p>"
        + _table(["subgroup", "images", "accuracy", "gap (points)", "macro recall", "gap (points)", ""], rows,
                 [g["flagged"] for g in sg["groups"]])
        + _img(eval_dir / "subgroups.png", "accuracy by subgroup")
    )


def _gradcam(ctx: dict, eval_dir: Path) -> str:
    note = _section_note(ctx, "gradcam")
    if note:
        return _note(note)
    return "<p>Warm colours: the pixels that drove the (wrong) prediction.</p>" + _img(
        eval_dir / "gradcam_misclassified.png", "Grad-CAM overlays on misclassified images"
    )


def _top_losses(ctx: dict, eval_dir: Path) -> str:
    rows = ctx["top_losses"]
    if not rows:
        return _note("No images.")
    return _img(eval_dir / "top_losses.png", "highest-loss test images") + _table(
        ["image", "true", "predicted", "probability", "loss"],
        [[r["path"], r["label"], r["predicted"], f"{r['probability']:.3f}", f"{r['loss']:.3f}"] for r in rows],
    )


def _label_issues(ctx: dict, eval_dir: Path) -> str:
    issues = ctx["label_issues"]
    if issues is None:
        return _note(_section_note(ctx, "label_issues") or "Not run.")
    if not issues:
        return "<p>No suspected label issues: the out-of-sample predictions agree with the given labels.</p>"
    earlier = " Found by an earlier run of label-issues." if _section_note(ctx, "label_issues") else ""
    head = (f"<p>{len(issues)} training images whose given label the model's out-of-sample predictions contradict "
            f"(confident learning), most suspicious first. Full list: eval/label_issues.csv.{earlier}</p>")  # fmt: skip
    rows = [[r.get("rank", ""), r["path"], r["given_label"], r["suggested_label"],
             f"{float(r.get('given_label_probability') or 0):.3f}", r.get("split", "")] for r in issues[:50]]  # fmt: skip
    return head + _img(eval_dir / "label_issues.png", "suspected label issues") + _table(
        ["rank", "image", "given", "suggested", "p(given)", "split"], rows
    )
