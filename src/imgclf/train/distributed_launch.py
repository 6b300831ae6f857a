"""``imgclf.train(..., nproc=N)`` and ``imgclf train --nproc N``: the run as N processes on this
machine, each an ``imgclf train`` under PyTorch's launcher (:func:`imgclf.launch.launch`).

A new run's workers read the fully resolved configuration from a config.yaml written for them
(``--config``, so a preset or an API default means the same in every process); a resumed run's
workers resume it with the same option flags. Rank 0 hands its :class:`~.fit.TrainResult` back
as JSON.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

from ..errors import UserError
from ..launch import launch
from ..runs import write_yaml
from .config import TrainConfig
from .fit import TrainResult


def launch_training(cfg: TrainConfig, *, overwrite: bool, callbacks=()) -> TrainResult:
    """Train ``cfg`` (validated, ``cfg.nproc`` > 1) in ``cfg.nproc`` processes."""
    _no_callbacks(callbacks)
    with tempfile.TemporaryDirectory(prefix="imgclf-config-") as folder:
        path = Path(folder) / "config.yaml"
        write_yaml(path, cfg.to_dict())
        report = launch(cfg.nproc, ["train", "--config", str(path), *(["--overwrite"] if overwrite else [])])
    return result_from_json(report)


def launch_resume(run: Path, options: dict, nproc: int, *, callbacks=()) -> TrainResult:
    """Resume ``run`` in ``nproc`` processes, with the resume ``options`` (--epochs, --device, ...)."""
    _no_callbacks(callbacks)
    return result_from_json(launch(nproc, ["train", "--resume", os.fspath(run), *as_flags({**options, "nproc": nproc})]))


def _no_callbacks(callbacks) -> None:
    if callbacks:
        raise UserError("callbacks cannot be handed to other processes: with nproc above 1, run your script under torchrun instead")


def as_flags(options: dict) -> list[str]:
    """Training options as `imgclf train` flags (``--name=value``; ``--name/--no-name`` for
    switches; a list repeats its flag)."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list | tuple):
            flags += [f"{flag}={v}" for v in value]
        elif value is not None:
            flags.append(f"{flag}={os.fspath(value) if isinstance(value, os.PathLike) else value}")
    return flags


def result_to_json(result: TrainResult) -> dict:
    """A TrainResult as JSON-able values (its configuration as config.yaml holds it)."""
    d = asdict(result)
    d["run_dir"], d["config"] = str(result.run_dir), result.config.to_dict()
    return d


def result_from_json(d: dict) -> TrainResult:
    known = {f.name for f in fields(TrainResult)}
    values = {k: v for k, v in d.items() if k in known}
    values["run_dir"], values["config"] = Path(d["run_dir"]), TrainConfig.from_dict(d["config"])
    return TrainResult(**values)
