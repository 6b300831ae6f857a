"""`imgclf retrain RUN --feedback STORE --out NEW`: the old run's configuration, trained on its
data plus the feedback, then graded against the old model before it may replace it.

Top to bottom: check the old run; copy the feedback export and plan the new split (:mod:`.plan`);
write the data as a union of the old data and the feedback export (:mod:`imgclf.data.union_source`)
with the planned ``splits.csv``; train (fine-tuning the old weights, or ``from_scratch``); keep
those data files in ``NEW/retrain/`` (they are staged outside NEW first, because training only
writes into an empty folder) and point NEW's ``config.yaml`` at them; score both models on the
old test split and the feedback (:mod:`.score`); evaluate NEW like the old run was (calibration
and the "unsure" threshold serving needs); write ``NEW/retrain.json``; move ``promote``'s link.

Feedback labels outside the old run's classes: fine-tuning keeps the model's head and classes,
so they are refused with the way out (``from_scratch`` trains a model with the new class).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..data.sources import open_source
from ..data.union_source import write_union
from ..errors import UserError
from ..inference.bundle import read_meta
from ..predict import load
from ..progress import log
from ..runs import Run, is_run_dir, open_run, run_lock, write_csv, write_json, write_yaml
from ..train.config import TrainConfig
from ..train.fit import fit
from .feedback import stage_feedback
from .plan import DataPlan, plan_data
from .promote import point_link
from .score import PROMOTE, ImageSets, compare, predicted_labels, verdict

RECORD = "retrain.json"
DATA_DIR = "retrain"  # NEW/retrain/: union.json, splits.csv, feedback/ (the export trained on)


@dataclass
class RetrainResult:
    """What `imgclf retrain` reports: the verdict, its reasons, and every number behind it
    (``record`` is the content of ``NEW/retrain.json``)."""

    new_run: Path
    verdict: str  # "promote" or "do-not-promote"
    reasons: list[str]
    record: dict
    promoted: Path | None = None  # the link moved to NEW (None: not asked, or not promoted)

    @property
    def promote(self) -> bool:
        return self.verdict == PROMOTE


def retrain(
    run: str | os.PathLike, feedback: str | os.PathLike, out: str | os.PathLike, *, epochs: int | None = None,
    from_scratch: bool = False, tolerance: float = 0.5, promote: str | os.PathLike | None = None,
    holdout: float = 0.2, overwrite: bool = False, feedback_name: str | None = None,
) -> RetrainResult:  # fmt: skip
    """Train NEW from RUN's configuration on RUN's data plus ``feedback`` (a folder `imgclf
    feedback export` wrote; ``feedback_name`` says where it came from) and decide whether NEW
    may replace RUN (see the module's description). ``tolerance``: accuracy points the test
    split may lose; ``holdout``: the fraction of feedback scored but not trained on; ``promote``:
    a link moved to NEW only when the verdict is promote."""
    old = open_run(run)
    if not old.splits.is_file() or not old.config.is_file():
        raise UserError(f"{run} has no splits.csv or config.yaml, so its data cannot be retrained on")
    if not 0 <= holdout < 1:
        raise UserError(f"--holdout must be in [0, 1), not {holdout}")
    if tolerance < 0:
        raise UserError(f"--tolerance must be 0 or more accuracy points, not {tolerance}")
    new = Path(out).expanduser()
    _check_out(new, old, overwrite)
    if promote is not None and Path(promote).expanduser().exists() and not Path(promote).expanduser().is_symlink():
        raise UserError(f"--promote {promote} exists and is not a symbolic link; give the path of a link (it is never deleted)")
    old_cfg, old_meta = TrainConfig.from_yaml(old.config), read_meta(old.model_dir)
    old_spec = _absolute_spec(old_cfg.data, run)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imgclf-retrain-") as tmp:
        stage = Path(tmp) / DATA_DIR
        images = stage_feedback(Path(feedback).expanduser(), stage / "feedback", shown_as=feedback_name)
        unknown = sorted({f.label for f in images} - set(old_meta.classes))
        if unknown and not from_scratch:
            raise UserError(
                f"feedback label {unknown[0]!r} is not one of {run}'s classes ({', '.join(old_meta.classes)}); fine-tuning keeps "
                "the model's classes: retrain with --from-scratch to add a class, or relabel that feedback"
            )
        plan = plan_data(open_source(old_spec), old.splits, images, holdout=holdout, seed=old_cfg.seed)
        if not any(row[2] == "test" for row in plan.rows[1:]):
            raise UserError(f"{run} has no test split (splits.csv), so old and new cannot be compared; retrain needs one")
        log(f"retrain: {_describe(plan)}")
        write_union(stage / "union.json", [{"data": old_spec}, {"data": "feedback/manifest.csv", "prefix": plan.prefix}])
        write_csv(stage / "splits.csv", plan.rows)
        pre = old_meta.preprocess  # pinned: the new model sees images as the old one did, whatever the feedback looks like
        cfg = replace(
            old_cfg, data=str(stage / "union.json"), splits=str(stage / "splits.csv"), out=str(new),
            pretrained=old_cfg.pretrained if from_scratch else str(old.root), epochs=epochs or old_cfg.epochs,
            img_size=pre.img_size, resize=pre.resize, channels=pre.channels,
        )  # fmt: skip
        trained = fit(cfg, overwrite=overwrite)
        _keep_data(Run(new), stage, trained.config)
    if not from_scratch and read_meta(Run(new).model_dir).classes != old_meta.classes:  # the plan keeps them: a guard
        raise UserError(f"{new} came out with other classes than {run}, so the old head does not fit it; retrain with --from-scratch")
    record = _score(old, Run(new), plan, old_meta, cfg.cache_dir, tolerance)
    fresh = [] if from_scratch else _reinitialised(Run(new))
    if fresh:
        log(f"warning: {len(fresh)} tensors of {run} did not fit the new model and were trained from scratch ({', '.join(fresh[:3])})")
    record.update(
        old_run=str(old.root), new_run=str(new), feedback_source=feedback_name or str(feedback),
        tolerance_points=tolerance, holdout=holdout,
        training={"from": cfg.pretrained or "random initialisation", "from_scratch": from_scratch, "epochs": trained.epochs,
                  "best_val_accuracy": trained.best_val_accuracy, "seconds": round(trained.seconds, 1),
                  "reinitialised_tensors": fresh},
        seconds=round(time.perf_counter() - t0, 1),
    )  # fmt: skip
    _evaluate_like(old, new, old_meta)
    record["promoted_link"] = None
    write_json(new / RECORD, record)  # before the link moves: a promoted run always has its record
    promoted = None
    if promote is not None and record["verdict"] == PROMOTE:
        promoted = point_link(promote, new)
        record["promoted_link"] = str(promoted)
        write_json(new / RECORD, record)
    return RetrainResult(new, record["verdict"], record["reasons"], record, promoted)


def _score(old: Run, new: Run, plan: DataPlan, old_meta, cache_dir: str | None, tolerance: float) -> dict:
    """Both models on the old test split, the held-out feedback and the trained-on feedback."""
    sets = ImageSets(old, old_meta.classes, new.root / DATA_DIR / "feedback" / "manifest.csv", cache_dir)
    models = {"old": load(old.root, backend="torch"), "new": load(new.root, backend="torch")}
    groups = {"test": None, "feedback_held_out": [f.path for f in plan.held_out], "feedback_trained": [f.path for f in plan.trained]}
    results = {}
    for name, paths in groups.items():
        answers, labels = {}, None
        for which, predictor in models.items():
            part, labels = sets.test(predictor.preprocess) if paths is None else sets.feedback(predictor.preprocess, paths)
            answers[which] = predicted_labels(predictor, part)
        results[name] = compare(labels, answers["old"], answers["new"])
    scope = "held-out" if results["feedback_held_out"]["n"] else "trained-on (too few to hold any out)"
    decisive = results["feedback_held_out"] if results["feedback_held_out"]["n"] else results["feedback_trained"]
    decision, reasons = verdict(results["test"], decisive, tolerance, scope)
    return {"verdict": decision, "reasons": reasons, "feedback_scored": scope, **results, "data": plan.counts()}


def _evaluate_like(old: Run, new: Path, old_meta) -> None:
    """Give NEW what serving reads from an evaluated run (temperature, "unsure" threshold) when
    the old run had it; the quick sections only (no robustness or Grad-CAM pages)."""
    if not old_meta.unsure_evaluated:
        return
    from ..evaluate.evaluate import evaluate

    target = (old_meta.unsure_threshold or {}).get("target_accuracy", 0.99)
    evaluate(new, target_accuracy=target, robustness=False, explain=False)


def _keep_data(run: Run, stage: Path, cfg: TrainConfig) -> None:
    """Move the staged data into NEW/retrain/ and point config.yaml and data_report.json at it."""
    with run_lock(run.root):
        kept = run.root / DATA_DIR
        shutil.move(str(stage), str(kept))
        cfg.data, cfg.splits = str(kept / "union.json"), str(kept / "splits.csv")
        write_yaml(run.config, cfg.to_dict())
        if run.data_report.is_file():
            report = json.loads(run.data_report.read_text(encoding="utf-8"))
            report["source"] = open_source(cfg.data).describe()
            write_json(run.data_report, report)


def _reinitialised(run: Run) -> list[str]:
    """Tensors of a fine-tuned run that did not come from the old weights (pretrained.json)."""
    try:
        return list(json.loads((run.root / "pretrained.json").read_text(encoding="utf-8")).get("initialised", []))
    except (OSError, ValueError):
        return []


def _check_out(new: Path, old: Run, overwrite: bool) -> None:
    """Refuse a NEW that training would refuse, before the feedback is exported and hashed."""
    if new.exists() and os.path.realpath(new) == os.path.realpath(old.root):
        raise UserError("--out must be a new folder, not the run being retrained")
    if new.is_dir() and any(new.iterdir()) and not (overwrite and is_run_dir(new)):
        raise UserError(f"{new} already exists and is not empty; choose another --out" + ("" if overwrite else " or pass --overwrite"))


def _absolute_spec(spec: str, run) -> str:
    """The old run's data as a spec that works from anywhere (a relative path is taken from here)."""
    if spec.startswith("builtin:"):
        return spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"{run} was trained on {spec}, which is not there (from {Path.cwd()}); run retrain where that path works")
    return str(path.resolve())


def _describe(plan: DataPlan) -> str:
    c = plan.counts()
    return (f"{c['old_images_kept']:,} images of the old run and {c['trained_on']} feedback images train "
            f"({c['old_images_replaced']} old train/val images replaced by their feedback, {c['old_labels_changed']} "
            f"with a new label); {c['held_out']} feedback images held out for scoring "
            f"({c['old_test_images_held_out']} of them old test images)")  # fmt: skip
