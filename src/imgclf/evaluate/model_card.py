"""``RUN/model_card.md``: what the model is for, what it was trained and tested on, how well it
does (with the test-set size), and where it fails, drawn from the evaluation just run.

After Mitchell et al., "Model Cards for Model Reporting" (2019): intended use, data, metrics,
subgroup results and caveats in one short document that travels with the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..runs import atomic_write_text

# A class or subgroup this far (absolute) below the macro average is listed as a failure mode.
WEAK_MARGIN = 0.05


def write_model_card(path: Path, context: dict) -> Path:
    """Write the model card for the evaluation ``context`` (see :func:`evaluate`)."""
    atomic_write_text(path, build_model_card(context))
    return path


def build_model_card(ctx: dict) -> str:
    parts = [front_matter(ctx), _details(ctx), _intended_use(ctx), _data(ctx), _metrics(ctx), _calibration(ctx),
             _subgroups(ctx), _robustness(ctx), _failure_modes(ctx), _reproduce(ctx)]  # fmt: skip
    return "\n".join(p.rstrip() + "\n" for p in parts if p)


def front_matter(ctx: dict) -> str:
    """The Hugging Face metadata header (YAML between ``---`` lines) that model repositories start
    with: library, tags, a licence placeholder, the dataset, and the test metrics as a model-index.

    ``library_name`` is timm for a timm architecture (its ``model/config.json`` lets timm load the
    run: ``timm.create_model("local-dir:RUN/model", pretrained=True)``) and imgclf for a compact net.
    """
    import yaml

    from ..models.compact import COMPACT_MODELS

    meta, m, run = ctx["meta"], ctx["metrics"], ctx["run"]
    is_timm = meta.architecture not in COMPACT_MODELS
    dataset = Path(str(m.get("data") or "data")).stem or "data"
    header = {
        "library_name": "timm" if is_timm else "imgclf",
        "license": "other",  # placeholder: the licence of the training data and of any pretrained weights applies
        "pipeline_tag": "image-classification",
        "tags": ["image-classification", "imgclf", *(["timm"] if is_timm else []), meta.architecture],
        "datasets": [dataset],
        "metrics": ["accuracy"],
        "model-index": [{
            "name": run.root.name,
            "results": [{
                "task": {"type": "image-classification"},
                "dataset": {"name": dataset, "type": dataset, "split": m.get("split", "test")},
                "metrics": [{"type": "accuracy", "value": round(float(m["accuracy"]), 4)}],
            }],
        }],
    }  # fmt: skip
    if meta.extra.get("pretrained") == "imagenet":
        header["tags"].append("imagenet-1k-pretrained")
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _details(ctx: dict) -> str:
    meta, run = ctx["meta"], ctx["run"]  # meta: the bundle's checked ModelMeta
    pre, extra = meta.preprocess, meta.extra
    return (
        f"# Model card: {run.root.name}\n\n"
        f"- **Model**: `{meta.architecture}`"
        + (f", initialised from `{extra['pretrained']}`" if extra.get("pretrained") else ", trained from scratch")
        + f"\n- **Classes** ({len(meta.classes)}): {', '.join(meta.classes)}\n"
        f"- **Input**: RGB, centre-cropped and resized to {pre.img_size} x {pre.img_size} px "
        f"({pre.interpolation}), normalised with mean {list(pre.mean)} and std {list(pre.std)}\n"
        f"- **Test-time augmentation**: {meta.tta}\n"
        f"- **Calibration temperature**: {meta.temperature:.4f}\n"
        f"- **Created**: {extra.get('created', 'unknown')} with imgclf {extra.get('imgclf_version', '?')}\n"
        f"- **Files**: `model/model.safetensors` + `model/model.json`; full evaluation in `eval/report.html`\n"
    )


def _intended_use(ctx: dict) -> str:
    classes = list(ctx["meta"].classes)
    u = ctx["selective"]["unsure_threshold"]
    unsure = (
        f"Predictions whose top probability is below {u['threshold']:.4f} are flagged \"unsure\" and should go "
        f"to a person: on the test split that keeps {_pct(u['coverage'])} of images automatic at "
        f"{_pct(u['accuracy'])} accuracy (target {_pct(u['target_accuracy'])})."
        if u else "No confidence threshold reached the target accuracy on validation data; review predictions by hand."
    )
    return (
        "## Intended use\n\n"
        f"Sorting images like those it was trained on into one of {len(classes)} classes "
        f"({', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''}), with a person reviewing uncertain cases. "
        f"{unsure}\n\n"
        "**Out of scope**: images of anything outside these classes (the model always answers one of them, "
        "often confidently), images that look unlike the training data (other cameras, lighting, resolutions: "
        "see Robustness), and decisions about people made without human review.\n"
    )


def _data(ctx: dict) -> str:
    path = ctx["run"].data_report
    if not path.exists():
        return "## Training data\n\nNot recorded (no data_report.json).\n"
    rep = json.loads(path.read_text(encoding="utf-8"))
    sizes = rep.get("split_sizes", {})
    counts = rep.get("class_counts", {})
    return (
        "## Training data\n\n"
        f"- **Source**: `{rep.get('source', {}).get('uri', '?')}`: {rep.get('images_read', 0):,} images read, "
        f"{rep.get('images_skipped', 0)} skipped as unreadable\n"
        f"- **Split** ({rep.get('split_method', '?')}): train {sizes.get('train', 0):,}, validation "
        f"{sizes.get('val', 0):,}, test {sizes.get('test', 0):,}; the test split was never used for training, "
        "model selection or calibration\n"
        f"- **Class balance**: {min(counts.values(), default=0):,} to {max(counts.values(), default=0):,} images per class "
        f"(ratio {rep.get('imbalance_ratio', 1.0):.2f})\n"
        + (f"- **Metadata columns**: {', '.join(rep['metadata_columns'])}\n" if rep.get("metadata_columns") else "")
    )


def _metrics(ctx: dict) -> str:
    m = ctx["metrics"]
    lo, hi = m["accuracy_ci95"]
    rows = [["accuracy", f"{m['accuracy']:.4f} (95% CI {lo:.4f} to {hi:.4f})"]]
    rows += [[f"top-{k} accuracy", f"{m[f'top{k}_accuracy']:.4f}"] for k in (3, 5) if f"top{k}_accuracy" in m]
    rows += [[f"{a} precision / recall / F1", f"{m[f'{a}_precision']:.4f} / {m[f'{a}_recall']:.4f} / {m[f'{a}_f1']:.4f}"]
             for a in ("macro", "weighted")]  # fmt: skip
    if "binary" in m:
        b = m["binary"]
        rows.append([f"sensitivity / specificity ({b['positive_class']})", f"{b['recall']:.4f} / {b['specificity']:.4f}"])
    tta = f", test-time augmentation {m['tta']}" if m["tta"] != "none" else ""
    per_class = _table(["class", "precision", "recall", "F1", "test images"],
                       [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
                        for r in m["per_class"]])  # fmt: skip
    return (
        f"## Metrics\n\nOn the held-out **{m['split']}** split of `{m['data']}`: **{m['n']:,} images**{tta}.\n\n"
        + _table(["metric", "value"], rows) + "\n" + per_class
    )


def _calibration(ctx: dict) -> str:
    c = ctx["calibration"]
    where = (f"fitted on the {c['fitted_on_n']:,} validation images" if c["fitted_on"] == "val"
             else "not refitted: no validation split")  # fmt: skip
    return (
        "## Calibration\n\n"
        f"Temperature scaling, T = {c['temperature']:.4f} ({where}). Expected calibration error on the test split: "
        f"{c['ece_before']:.4f} before, {c['ece_after']:.4f} after; negative log-likelihood {c['nll_before']:.4f} "
        f"before, {c['nll_after']:.4f} after. Probabilities returned by predict, export and serve are calibrated.\n"
    )


def _subgroups(ctx: dict) -> str:
    sg = ctx["metrics"].get("subgroups")
    if sg is None:
        return "## Subgroups\n\nNot evaluated: run `imgclf evaluate RUN --group-by COLUMN` with a metadata column.\n"
    rows = [[g["group"], g["n"], _pct(g["accuracy"]), f"{100 * g['accuracy_gap']:+.2f}", _pct(g["macro_recall"]),
             "yes" if g["flagged"] else ""] for g in sg["groups"]]  # fmt: skip
    return (
        f"## Subgroups (by `{sg['column']}`)\n\n"
        f"Flagged: more than {100 * sg['tolerance']:.1f} points below the overall accuracy ({_pct(sg['overall']['accuracy'])}) "
        f"or macro recall ({_pct(sg['overall']['macro_recall'])}).\n\n"
        + _table(["subgroup", "test images", "accuracy", "gap (points)", "macro recall", "flagged"], rows)
    )


def _robustness(ctx: dict) -> str:
    rob = ctx["robustness"]
    if rob is None:
        return f"## Robustness\n\nNot evaluated in this run: `imgclf robustness {ctx['run'].root}` measures it.\n"
    rows = [[p["corruption"], _pct(p["mean_accuracy"]), _pct(p["mean_relative_drop"])]
            for p in sorted(rob["per_corruption"], key=lambda p: -p["mean_relative_drop"])]  # fmt: skip
    return (
        "## Robustness\n\n"
        f"Accuracy under synthetic corruptions at severities {sorted({r['severity'] for r in rob['results']})} "
        f"on {rob['n']:,} {rob['split']} images (clean accuracy {_pct(rob['clean_accuracy'])}); "
        f"mean relative drop {_pct(rob['mean_relative_drop'])}.\n\n"
        + _table(["corruption", "mean accuracy", "mean relative drop"], rows)
    )


def failure_modes(ctx: dict, top: int = 3) -> list[str]:
    """Plain sentences on where the model fails: the most confused class pairs, its weakest
    classes, its worst corruptions and its weakest subgroups."""
    m = ctx["metrics"]
    out = []
    for p in m["most_confused"][:top]:
        out.append(f"Confuses **{p['true']}** with **{p['predicted']}**: {p['count']} of the test images of "
                   f"{p['true']} ({_pct(p['rate'])}).")  # fmt: skip
    weak = sorted((r for r in m["per_class"] if r["recall"] < m["macro_recall"] - WEAK_MARGIN), key=lambda r: r["recall"])
    for r in weak[:top]:
        out.append(f"Weakest class **{r['class']}**: recall {_pct(r['recall'])} against {_pct(m['macro_recall'])} on average.")
    rob = ctx["robustness"]
    if rob:
        for p in sorted(rob["per_corruption"], key=lambda p: -p["mean_relative_drop"])[:top]:
            if p["mean_relative_drop"] > WEAK_MARGIN:
                out.append(f"Sensitive to **{p['corruption'].replace('_', ' ')}**: accuracy falls by "
                           f"{_pct(p['mean_relative_drop'])} (relative) on average over severities.")  # fmt: skip
    sg = m.get("subgroups")
    if sg:
        for g in [g for g in sg["groups"] if g["flagged"]][:top]:
            out.append(f"Weaker for **{sg['column']} = {g['group']}**: accuracy {_pct(g['accuracy'])} "
                       f"({100 * g['accuracy_gap']:+.1f} points, {g['n']} images).")  # fmt: skip
    c = ctx["calibration"]
    if c["ece_after"] > 0.05:
        out.append(f"Confidence is unreliable even after calibration (ECE {c['ece_after']:.3f}).")
    issues = ctx["label_issues"]
    if issues:
        out.append(f"{len(issues)} training images look mislabelled (eval/label_issues.csv); the training labels are not clean.")
    return out


def _failure_modes(ctx: dict) -> str:
    items = failure_modes(ctx)
    body = "\n".join(f"- {s}" for s in items) if items else "- None stood out in this evaluation."
    n = ctx["metrics"]["n"]
    return (
        "## Known failure modes and limitations\n\n" + body + "\n"
        f"- All figures come from {n:,} test images drawn from the same source as the training data; "
        "accuracy on data from elsewhere will be lower.\n"
    )


def _reproduce(ctx: dict) -> str:
    root = ctx["run"].root
    return (
        "## Reproduce\n\n```bash\n"
        f"imgclf train --config {root}/config.yaml --out {root}-again\n"
        f"imgclf evaluate {root}" + (f" --group-by {ctx['metrics']['subgroups']['column']}" if "subgroups" in ctx["metrics"] else "")
        + "\n```\n"
    )
