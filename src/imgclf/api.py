"""The Python API: the same operations as the CLI, returning results instead of printing them."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .evaluate.evaluate import EvalResult
from .evaluate.evaluate import evaluate as _evaluate
from .predict import Predictor
from .predict import load as _load
from .train.config import TrainConfig
from .train.loop import TrainResult, fit
from .train.presets import apply_preset

_RESUME_OPTIONS = {"epochs", "device", "checkpoint_every", "cache_dir"}


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


def evaluate(run: str | os.PathLike | TrainResult, *, data: str | None = None, split: str = "test") -> EvalResult:
    """Evaluate a run on its test split; writes ``RUN/eval/`` and returns the metrics."""
    return _evaluate(_run_path(run), data=data, split=split)


def load(
    path: str | os.PathLike | TrainResult, device: str = "auto", precision: str = "auto", backend: str = "auto"
) -> Predictor:
    """A :class:`Predictor` for a run directory or model bundle: ``load(run).predict(["x.jpg"])``."""
    return _load(_run_path(path), device=device, precision=precision, backend=backend)


def check_data(data: str | os.PathLike, **options) -> dict:
    """The dataset health report of `imgclf data check`, as a dict."""
    from .data.audit import check_data as _check

    return _check(data, **options)


def _run_path(run) -> Path:
    return Path(run.run_dir) if isinstance(run, TrainResult) else Path(run)
