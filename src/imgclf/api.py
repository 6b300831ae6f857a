"""The Python API: the same operations as the CLI, returning results instead of printing them."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .evaluate.evaluate import EvalResult
from .evaluate.evaluate import evaluate as _evaluate
from .export.export import ExportResult
from .export.export import export as _export
from .predict import Predictor
from .predict import load as _load
from .train.config import TrainConfig
from .train.loop import TrainResult, fit
from .train.presets import apply_preset

_RESUME_OPTIONS = {"epochs", "device", "checkpoint_every", "cache_dir"}

# Importing imgclf.export.export above binds the name ``imgclf.export`` to the package before
# ``imgclf/__init__`` rebinds it to the export() function below; later imports of its submodules
# then leave the function in place (as with imgclf.evaluate).


def train(
    data: str | os.PathLike | None = None,
    *,
    config: TrainConfig | str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: str | os.PathLike | None = None,
    **options,
) -> TrainResult:
    """Train a classifier on ``data`` and write a run directory (``out=`` is required).

    Options are the fields of :class:`imgclf.train.config.TrainConfig` (``model``, ``epochs``,
    ``img_size``, ``batch_size``, ``lr``, ``preset``, ...), the same as `imgclf train`'s flags.
    ``config`` is a TrainConfig or the path of a ``config.yaml``; options given here override
    it, and a preset fills in only what neither sets.

    ``resume=RUN`` continues an interrupted run from its last checkpoint; on a finished run,
    ``epochs=N`` trains N more epochs (a new learning-rate cycle).
    """
    if resume is not None:
        return _resume(Path(resume), data, options)
    if isinstance(config, TrainConfig):
        cfg, explicit = config, set()
    elif config is not None:
        cfg = TrainConfig.from_yaml(config)
        explicit = set(TrainConfig.keys_in_yaml(config))
    else:
        cfg, explicit = TrainConfig(), set()
    if data is not None:
        options["data"] = data
    for key, value in options.items():
        if not hasattr(cfg, key):
            raise TypeError(f"train() got an unknown option {key!r}")
        setattr(cfg, key, str(value) if key in ("data", "out") else value)
    apply_preset(cfg, explicit | set(options))
    return fit(cfg, overwrite=overwrite)


def _resume(run: Path, data, options: dict) -> TrainResult:
    if not (run / "config.yaml").exists():
        raise UserError(f"{run} is not a run directory that can be resumed (no config.yaml)")
    changed = sorted(set(options) - _RESUME_OPTIONS - {"out"})
    if changed:
        raise UserError(f"cannot change {', '.join('--' + c.replace('_', '-') for c in changed)} when resuming; start a new run instead")
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    if data is not None and str(data) != cfg.data:
        raise UserError(f"{run} was trained on {cfg.data}, not {data}; resume it without DATA")
    cfg.out = str(run)
    extend = options.pop("epochs", None)
    for key, value in options.items():
        if key != "out":
            setattr(cfg, key, value)
    return fit(cfg, resume=True, extend_epochs=extend)


def evaluate(run: str | os.PathLike | TrainResult, **options) -> EvalResult:
    """Evaluate a run on its test split: metrics, calibration (stored in ``model.json``),
    selective prediction, optional TTA and subgroup results, robustness, Grad-CAM and label
    issues; writes ``RUN/eval/`` (``report.html`` included) and ``RUN/model_card.md``.

    Options (``data``, ``split``, ``tta``, ``target_accuracy``, ``group_by``, ``tolerance``,
    ``robustness``, ``robustness_limit``, ``explain``, ``label_issues``, ``precision``) are those
    of :func:`imgclf.evaluate.evaluate.evaluate`, the same as `imgclf evaluate`'s flags.
    """
    return _evaluate(_run_path(run), **options)


def load(
    path: str | os.PathLike | TrainResult, device: str = "auto", precision: str = "auto", backend: str = "auto"
) -> Predictor:
    """A :class:`Predictor` for a run directory, model bundle or exported ``.onnx`` file:
    ``load(run).predict(["x.jpg"])``.

    ``backend``: ``torch``, ``onnx``, ``onnx-int8`` or ``auto`` (the run's ONNX export on a CPU
    when it was exported from the current weights, else PyTorch).
    """
    return _load(_run_path(path), device=device, precision=precision, backend=backend)


def export(run: str | os.PathLike | TrainResult, **options) -> ExportResult:
    """Export a run's model to ``RUN/export/`` (``model.onnx`` [+ ``model.int8.onnx``] or
    ``model.torchscript.pt``) and check it against PyTorch.

    Options (``format``, ``int8``, ``opset``, ``allow_drop``, ``data``, ``split``, ``limit``) are
    those of :func:`imgclf.export.export.export`, the same as `imgclf export`'s flags. Returns an
    :class:`~imgclf.export.export.ExportResult`; raises
    :class:`~imgclf.export.export.ExportCheckFailed` (a UserError) when the parity or int8
    accuracy check fails, after writing ``parity.json``.
    """
    return _export(_run_path(run), **options)


def check_data(data: str | os.PathLike, **options) -> dict:
    """The dataset health report of `imgclf data check`, as a dict."""
    from .data.audit import check_data as _check

    return _check(data, **options)


def robustness(run: str | os.PathLike | TrainResult, **options) -> dict:
    """Accuracy under corruptions (low light, contrast, noise, blur, JPEG, grayscale, crop/zoom,
    rotation, occlusion) at each severity, and the mean relative drop against clean accuracy;
    writes ``RUN/eval/robustness.{json,csv,png}``. Options (``data``, ``split``, ``severities``,
    ``limit``, ``seed``, ``tta``): :func:`imgclf.evaluate.robustness.robustness`."""
    from .evaluate.robustness import robustness as _robustness

    return _robustness(_run_path(run), **options)


def explain(run: str | os.PathLike | TrainResult, images: list[str], **options) -> list[dict]:
    """Grad-CAM overlays (PNG) for ``images`` (files, folders, glob patterns), for the predicted
    class or ``class_name``; one dict per image with its prediction and overlay path. Options
    (``class_name``, ``out_dir``): :func:`imgclf.evaluate.explain.explain`."""
    from .evaluate.explain import explain as _explain

    return _explain(_run_path(run), list(images), **options)


def label_issues(run: str | os.PathLike | TrainResult, **options) -> list[dict]:
    """Training images whose label cross-validated, out-of-sample predictions contradict with
    high confidence (confident learning, via cleanlab), most suspicious first; writes
    ``RUN/eval/label_issues.csv``. Trains ``folds`` models with the run's configuration.
    Options (``folds``, ``epochs``, ``data``): :func:`imgclf.evaluate.label_issues.find_label_issues`."""
    from .evaluate.label_issues import find_label_issues

    return find_label_issues(_run_path(run), **options)


def _run_path(run) -> Path:
    return Path(run.run_dir) if isinstance(run, TrainResult) else Path(run)
