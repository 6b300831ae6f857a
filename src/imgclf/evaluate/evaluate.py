"""``imgclf evaluate``: everything a stakeholder needs to trust (or not) a trained run.

One function per phase, in the order they run: predict the split (with and without test-time
augmentation), score it, calibrate on the validation split, choose the "unsure" threshold,
compare subgroups, draw galleries, run robustness / Grad-CAM / label issues, then write
``RUN/eval/`` (metrics, CSVs, figures, ``report.html``) and ``RUN/model_card.md``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset import PreparedData, Split
from ..data.loader import BatchLoader
from ..data.run_images import RunImages
from ..errors import UserError
from ..inference.bundle import read_meta, update_bundle_meta
from ..inference.forward import softmax
from ..inference.names import TTA_MODES
from ..predict import Predictor, load
from ..runs import Run, atomic_write_text, open_run, run_lock, write_csv, write_json
from ..train.drift_baseline import refresh_confidence
from . import galleries, plots
from .calibration import calibration_report
from .metrics import (
    accuracy_interval,
    classification_metrics,
    per_sample_loss,
    tta_effect,
)
from .selective import selective_report
from .subgroups import subgroup_metrics


@dataclass
class EvalResult:
    """What :func:`evaluate` produced: ``metrics`` is the content of ``eval/metrics.json``."""

    eval_dir: Path
    split: str
    metrics: dict
    data: str
    report: Path | None = None
    model_card: Path | None = None
    robustness: dict | None = None
    label_issues: list[dict] | None = None  # rows of label_issues.csv, when there is one
    sections: dict = field(default_factory=dict)  # optional section -> "done" or why it was not run


def evaluate(
    run: str | os.PathLike,
    *,
    data: str | None = None,
    split: str = "test",
    tta: bool | str | None = None,
    target_accuracy: float = 0.99,
    group_by: str | None = None,
    tolerance: float = 0.05,
    robustness: bool = True,
    robustness_limit: int | None = 1000,
    explain: bool = True,
    label_issues: bool = False,
    batch_size: int = 256,
    precision: str = "auto",
) -> EvalResult:
    """Evaluate ``run`` on its ``split`` (test by default); write ``RUN/eval/`` and the model card.

    Without ``data`` the images come from the data the run was trained on, split exactly as
    recorded in ``splits.csv``. With ``data``: if it holds the run's images (the same data,
    moved), the recorded split is reused; otherwise it is new data, evaluated on its predefined
    ``split`` if it has one, or on all of its images.

    ``tta``: None uses the model's own setting; True turns it on (the model's mode, or flip);
    False turns it off; or name a mode. Whenever the evaluated mode differs from no TTA, both
    are scored and the difference reported. The temperature (fitted on the validation split)
    and the ``unsure_threshold`` for ``target_accuracy`` are stored in ``model/model.json`` for
    the setting predict and serve use. ``group_by`` names a metadata column (or ``group``) for
    per-subgroup results; subgroups more than ``tolerance`` below the overall accuracy or macro
    recall are flagged. ``robustness``, ``explain`` and ``label_issues`` add those sections
    (``robustness_limit`` runs the corruptions on a seeded random subset of that many images,
    1000 by default, 0 or None for all: 30 corrupted copies of a large test set take long;
    label issues retrain cross-validated models: off by default, and an existing
    ``label_issues.csv`` is shown anyway).
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise UserError(f"--target-accuracy must be in (0, 1], not {target_accuracy}")
    if tolerance < 0:
        raise UserError(f"--tolerance must be 0 or more, not {tolerance}")
    r = open_run(run)
    with run_lock(r.root):  # one writer per run: a training or another evaluation of it is refused, naming its process
        predictor = load(r.root, precision=precision, backend="torch")
        mode = _resolve_tta(tta, predictor.tta)
        images, prepared = _prepare(r, predictor, data, split, group_by)
        spec = images.spec
        part = prepared.split(split)
        val = prepared.split("val") if split != "val" else part
        groups = _groups(part, group_by, split) if group_by else None
        classes = predictor.classes
        out = r.eval_dir
        out.mkdir(parents=True, exist_ok=True)

        # Logits once per TTA mode needed: the evaluated one, the deployed one (what predict uses,
        # so what calibration must describe) and "none" for the effect of TTA.
        deployed = predictor.tta
        modes = {mode, deployed} | ({"none"} if mode != "none" or deployed != "none" else set())
        logits = {m: _logits(predictor, part, batch_size, m) for m in sorted(modes)}
        val_logits = _logits(predictor, val, batch_size, deployed) if len(val) else None

        calibration = calibration_report(
            val_logits, val.labels if len(val) else None, logits[deployed], part.labels,
            previous_temperature=predictor.temperature,
        )  # fmt: skip
        t = calibration["temperature"]
        probs = softmax(logits[mode], t)
        metrics = classification_metrics(part.labels, probs, classes)
        metrics["accuracy_ci95"] = accuracy_interval(int((probs.argmax(1) == part.labels).sum()), metrics["n"])
        deployed_probs = softmax(logits[deployed], t)
        selective = selective_report(
            deployed_probs.max(1), deployed_probs.argmax(1) == part.labels, target_accuracy,
            val_confidence=softmax(val_logits, t).max(1) if val_logits is not None else None,
            val_correct=softmax(val_logits, t).argmax(1) == val.labels if val_logits is not None else None,
        )  # fmt: skip
        _store_in_bundle(r, calibration, selective, softmax(val_logits, t).max(1) if val_logits is not None else None)
        predictor.temperature = t

        metrics.update(
            split=split,
            data=str(spec),
            images_skipped=len(prepared.skipped),
            skipped=prepared.skipped,
            temperature=t,
            tta=mode,
            deployed_tta=deployed,
            calibration=calibration,
            selective={k: v for k, v in selective.items() if k != "curve"},
        )
        if len(modes) > 1:  # TTA is in play: score it against no TTA on the same images
            with_tta = mode if mode != "none" else deployed
            metrics["tta_effect"] = tta_effect(part.labels, softmax(logits["none"], t), softmax(logits[with_tta], t), with_tta)
        if groups is not None:
            metrics["subgroups"] = subgroup_metrics(part.labels, probs.argmax(1), groups, column=group_by, tolerance=tolerance)

        write_json(out / "metrics.json", metrics)
        _write_tables(out, metrics, classes, part, probs, selective["curve"])
        _write_figures(out, r, metrics, calibration, selective)
        top = galleries.top_losses(part, probs, classes, out)

        sections: dict[str, str] = {}  # optional section -> "done" or why not
        robust = None
        if robustness:
            robust = _robustness(r, data, split, predictor, mode, robustness_limit or None, sections)
        else:
            sections["robustness"] = "not run (--no-robustness)"
        if explain:
            _explain(predictor, part, probs, out, sections)
        else:
            sections["gradcam"] = "not run (--no-explain)"
        issues = _label_issues(r, label_issues, data if images.reuses_split else None, prepared, predictor, out, sections)

        from .model_card import write_model_card
        from .report import write_report

        context = {
            "run": r, "meta": read_meta(r.model_dir),  # as stored now: with the new temperature
            "config": r.read_config(), "metrics": metrics, "calibration": calibration, "selective": selective,
            "top_losses": top, "robustness": robust, "label_issues": issues, "sections": sections,
        }  # fmt: skip
        report = write_report(out / "report.html", context)
        card = write_model_card(r.root / "model_card.md", context)
        return EvalResult(out, split, metrics, str(spec), report=report, model_card=card, robustness=robust, label_issues=issues,
                          sections=sections)  # fmt: skip


# ------------------------------------------------------------------------------------- phases


def _resolve_tta(tta: bool | str | None, deployed: str) -> str:
    if tta is None:
        return deployed
    if tta is True:
        return deployed if deployed != "none" else "flip"
    if tta is False:
        return "none"
    if tta not in TTA_MODES:
        raise UserError(f"unknown TTA mode {tta!r}; choose {', '.join(TTA_MODES)}")
    return tta


def _prepare(r: Run, predictor: Predictor, data: str | None, split: str, group_by: str | None) -> tuple[RunImages, PreparedData]:
    """The evaluated split (and the validation split, for calibration), decoded through the cache."""
    images = RunImages(r, predictor.preprocess, predictor.classes, data)
    source = images.source
    if group_by and group_by != "group" and group_by not in source.meta_columns:
        if not source.meta_columns:
            raise UserError(f"--group-by {group_by}: {source.uri} has no metadata columns; "
                            "subgroups need a CSV/JSONL manifest with extra columns (or --group-by group)")  # fmt: skip
        available = ", ".join(["group", *source.meta_columns])
        raise UserError(f"--group-by {group_by}: {source.uri} has no such column (columns to group by: {available})")
    return images, images.prepare((split, "val"))


def _groups(part: Split, column: str, split: str) -> list[str | None]:
    groups = [s.group if column == "group" else s.meta.get(column) for s in part.samples]
    if not any(groups):
        raise UserError(f"--group-by {column}: no {split} image has a value in that column")
    return groups


def _logits(predictor: Predictor, part: Split, batch_size: int, tta: str) -> np.ndarray:
    return predictor.batch_logits((x for x, _ in BatchLoader(part, batch_size)), tta=tta)


def _store_in_bundle(r: Run, calibration: dict, selective: dict, val_confidence: np.ndarray | None) -> None:
    """Temperature and "unsure" threshold go into model.json, where predict, export and serve
    read them; only when fitted on validation data (never tuned on the split they are graded on).
    The drift baseline's confidence is then refreshed under the new temperature, so that serving
    compares its (calibrated) confidences with calibrated ones."""
    updates: dict = {}
    if calibration["fitted_on"] == "val":
        updates["temperature"] = calibration["temperature"]
        if val_confidence is not None:
            refresh_confidence(r.model_dir, val_confidence, calibration["temperature"])
    if selective["chosen_on"] == "val":
        u = selective["unsure_threshold"]
        updates["unsure_threshold"] = None if u is None else {
            "threshold": u["threshold"], "target_accuracy": u["target_accuracy"], "coverage": u["coverage"],
        }  # fmt: skip
    if updates:
        update_bundle_meta(r.model_dir, updates)


def _write_tables(out: Path, metrics: dict, classes: list[str], part: Split, probs: np.ndarray, curve: dict) -> None:
    cm = np.asarray(metrics["confusion_matrix"])
    write_csv(out / "confusion_matrix.csv", [["true \\ predicted", *classes]] + [[c, *cm[i]] for i, c in enumerate(classes)])
    rates = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
    write_csv(out / "confusion_matrix_normalized.csv",
              [["true \\ predicted", *classes]] + [[c, *(f"{v:.6f}" for v in rates[i])] for i, c in enumerate(classes)])  # fmt: skip
    write_csv(out / "per_class.csv", [["class", "precision", "recall", "f1", "support"]] + [
        [r["class"], f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}", r["support"]] for r in metrics["per_class"]
    ])  # fmt: skip
    write_csv(out / "most_confused.csv", [["true", "predicted", "count", "rate"]] + [
        [m["true"], m["predicted"], m["count"], f"{m['rate']:.6f}"] for m in metrics["most_confused"]
    ])  # fmt: skip
    pred, loss = probs.argmax(1), per_sample_loss(part.labels, probs)
    write_csv(out / "predictions.csv", [["path", "label", "predicted", "probability", "correct", "loss"]] + [
        [s.path, classes[t], classes[p], f"{probs[i, p]:.6f}", int(t == p), f"{loss[i]:.6f}"]
        for i, (s, t, p) in enumerate(zip(part.samples, part.labels, pred))
    ])  # fmt: skip
    write_csv(out / "selective.csv", [["threshold", "coverage", "accuracy"]] + [
        [f"{t:.6f}", f"{c:.6f}", f"{a:.6f}"] for t, c, a in zip(curve["threshold"], curve["coverage"], curve["accuracy"])
    ])  # fmt: skip
    if "subgroups" in metrics:
        sg = metrics["subgroups"]
        write_csv(out / "subgroups.csv", [["group", "n", "accuracy", "macro_recall", "accuracy_gap", "macro_recall_gap", "flagged"]] + [
            [g["group"], g["n"], f"{g['accuracy']:.6f}", f"{g['macro_recall']:.6f}", f"{g['accuracy_gap']:.6f}",
             f"{g['macro_recall_gap']:.6f}", int(g["flagged"])] for g in sg["groups"]
        ])  # fmt: skip
    atomic_write_text(out / "classification_report.txt", metrics["classification_report"])


def _write_figures(out: Path, r: Run, metrics: dict, calibration: dict, selective: dict) -> None:
    classes = [p["class"] for p in metrics["per_class"]]
    plots.confusion_matrix_png(metrics["confusion_matrix"], classes, out / "confusion_matrix.png")
    plots.confusion_matrix_png(metrics["confusion_matrix"], classes, out / "confusion_matrix_normalized.png", normalize=True)
    if not plots.training_curves_png(r.read_metrics(), out / "training_curves.png"):
        (out / "training_curves.png").unlink(missing_ok=True)
    plots.reliability_png(calibration["bins_before"], calibration["bins_after"], calibration["temperature"], out / "reliability.png")
    plots.coverage_png(selective["curve"], selective["unsure_threshold"], out / "selective.png")
    if "subgroups" in metrics:
        plots.subgroups_png(metrics["subgroups"], out / "subgroups.png")


# The optional sections come from modules that need optional packages (pytorch-grad-cam,
# cleanlab); without them the report says what is missing and which command produces it.


def _robustness(r: Run, data, split: str, predictor: Predictor, tta: str, limit: int | None, sections: dict) -> dict | None:
    try:
        from .robustness import robustness
    except ModuleNotFoundError as exc:
        sections["robustness"] = f"not available ({exc}); `imgclf robustness {r.root}` produces it"
        return None
    result = robustness(r.root, data=data, split=split, predictor=predictor, tta=tta, limit=limit)
    sections["robustness"] = "done"
    return result


def _explain(predictor: Predictor, part: Split, probs: np.ndarray, out: Path, sections: dict) -> None:
    (out / "gradcam_misclassified.png").unlink(missing_ok=True)  # never show a stale gallery
    try:
        drawn = galleries.gradcam_misclassified(predictor, part, probs, out)
    except ModuleNotFoundError as exc:
        sections["gradcam"] = f"not available ({exc}); install imgclf[all] for Grad-CAM"
        return
    sections["gradcam"] = "done" if drawn else "no misclassified image to explain"


def _label_issues(
    r: Run, run_it: bool, data: str | None, prepared: PreparedData, predictor: Predictor, out: Path, sections: dict
) -> list[dict] | None:
    csv_path = out / "label_issues.csv"
    if run_it:
        try:
            from .label_issues import find_label_issues
        except ModuleNotFoundError as exc:
            sections["label_issues"] = f"not available ({exc})"
            return None
        find_label_issues(r.root, data=data)
    if not csv_path.exists():
        sections["label_issues"] = f"not run; `imgclf evaluate {r.root} --label-issues` or `imgclf data label-issues {r.root}` produces it"
        return None
    with open(csv_path, newline="", encoding="utf-8") as fh:
        issues = list(csv.DictReader(fh))
    (out / "label_issues.png").unlink(missing_ok=True)
    galleries.label_issue_gallery(issues, prepared.source, predictor.preprocess, out)
    sections["label_issues"] = "done" if run_it else "shown from an earlier run of label-issues"
    return issues
