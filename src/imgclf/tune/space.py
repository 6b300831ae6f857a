"""The search space of `imgclf tune`: which training options each trial draws, and from where.

The default space searches learning rate, weight decay, batch size, model, augmentation strength,
label smoothing and epochs. A YAML file (``--space``) narrows or widens it key by key; keys it
does not name keep their default range::

    # each key is an `imgclf train` option (its name with _ for -), or `augment`
    lr: {low: 1.0e-4, high: 1.0e-2, log: true}  # a range: whole numbers when both ends are, else real
    epochs: {low: 2, high: 8, step: 2}          # step: only every step-th value
    model: [simple_cnn, lenet5, resnet18]       # a list: one of these values
    batch_size: 64                              # one value: the same for every trial (not searched)
    img_size: 16                                # any other option can be fixed the same way

``augment`` is one number from 0 (no augmentation) to 1 (strong) that sets crop padding,
rotation, colour jitter and random erasing together (:func:`augmentation`); an option the file
or the command line fixes explicitly wins over it.
"""

from __future__ import annotations

import math
import os
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..train.config import TrainConfig, read_yaml

AUGMENT = "augment"

DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"low": 3e-4, "high": 1e-2, "log": True},  # around AdamW's usual 1e-3..3e-3, a decade each way
    "weight_decay": {"low": 1e-5, "high": 0.1, "log": True},
    "batch_size": [32, 64, 128],
    "model": ["simple_cnn", "lenet5"],  # compact nets: quick on CPUs; widen with timm names in --space
    AUGMENT: {"low": 0.0, "high": 1.0},
    "label_smoothing": {"low": 0.0, "high": 0.2},
    "epochs": {"low": 3, "high": 10},
}

# augment = 1 sets these; a trial's strength s sets s times each (0: off). The ends are the
# strongest settings that still leave small images (digits, CIFAR) recognisable.
AUGMENT_AT_FULL = {"crop_padding": 0.25, "rotation": 15.0, "color_jitter": 0.4, "erasing": 0.25}

_NOT_SEARCHED = ("data", "out")  # given to every trial by tune itself


def augmentation(strength: float) -> dict[str, float]:
    """The training options an augmentation strength in [0, 1] stands for."""
    return {key: round(full * strength, 4) for key, full in AUGMENT_AT_FULL.items()}


def load_space(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The default space with ``path``'s entries over it, every entry checked (a UserError names
    the first bad key)."""
    space = dict(DEFAULT_SPACE)
    if path is not None:
        if not Path(path).expanduser().is_file():
            raise UserError(f"--space {path}: no such file")
        space.update(read_yaml(Path(path).expanduser()))
    check_space(space, where=str(path or "the default space"))
    return space


def check_space(space: dict[str, Any], where: str = "--space") -> None:
    """Raise a UserError naming the first entry that is not a fixed value, a list or a range of
    values that its training option accepts."""
    options = {f.name for f in fields(TrainConfig)} - set(_NOT_SEARCHED)
    for key, spec in space.items():
        if key not in options and key != AUGMENT:
            hint = " (tune sets them)" if key in _NOT_SEARCHED else "; see `imgclf train --help` (use _ for -)"
            raise UserError(f"{where}: {key!r} is not an option that can be searched{hint}")
        if isinstance(spec, dict):
            _check_range(key, spec, where)
        elif isinstance(spec, list):
            if not spec:
                raise UserError(f"{where}: {key} is an empty list; give the values to choose from")
            for value in spec:
                _check_value(key, value, where)
        else:
            _check_value(key, spec, where)


def searched(space: dict[str, Any]) -> list[str]:
    """The keys a trial draws (lists and ranges), in the space's order."""
    return [k for k, spec in space.items() if isinstance(spec, dict | list)]


def suggest(trial, space: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """A trial's training options: drawn from ``space`` (its fixed entries as they are), with
    ``augment`` expanded, then ``fixed`` (the command line's options) over them. Keys that
    ``fixed`` sets are not drawn at all, so they are no dimension of the search."""
    options: dict[str, Any] = {}
    strength = None
    for key, spec in space.items():
        if key in fixed:
            continue
        if isinstance(spec, dict):
            value = _suggest_range(trial, key, spec)
        elif isinstance(spec, list):
            value = trial.suggest_categorical(key, spec)
        else:
            value = spec
        if key == AUGMENT:
            strength = value
        else:
            options[key] = value
    if strength is not None:
        explicit = set(options) | set(fixed)
        options.update({k: v for k, v in augmentation(float(strength)).items() if k not in explicit})
    options.update(fixed)
    return options


def max_epochs(space: dict[str, Any], fixed: dict[str, Any]) -> int:
    """The most epochs a trial may train (Hyperband's largest budget)."""
    spec = fixed.get("epochs", space.get("epochs", TrainConfig.epochs))
    if isinstance(spec, dict):
        return int(spec["high"])
    if isinstance(spec, list):
        return int(max(spec))
    return int(spec)


def _suggest_range(trial, key: str, spec: dict):
    low, high = spec["low"], spec["high"]
    if _is_int(low) and _is_int(high) and not _float_only(key):
        return trial.suggest_int(key, int(low), int(high), step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))
    step = spec.get("step")
    return trial.suggest_float(key, float(low), float(high), step=float(step) if step else None, log=bool(spec.get("log", False)))


def _check_range(key: str, spec: dict, where: str) -> None:
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown or "low" not in spec or "high" not in spec:
        raise UserError(f"{where}: {key} must be a value, a list, or a range like {{low: 1, high: 5}} (with optional log, step)")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    for bound in (low, high) + ((step,) if step is not None else ()):
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise UserError(f"{where}: {key}'s low, high and step must be numbers, not {bound!r}")
    if not low < high:
        raise UserError(f"{where}: {key}'s low ({low}) must be below its high ({high})")
    if spec.get("log") and low <= 0:
        raise UserError(f"{where}: {key} is searched on a log scale, so its low must be above 0")
    if spec.get("log") and step is not None:
        raise UserError(f"{where}: {key} cannot have both log and step")
    if step is not None and step <= 0:
        raise UserError(f"{where}: {key}'s step must be positive")
    if not isinstance(spec.get("log", False), bool):
        raise UserError(f"{where}: {key}'s log must be true or false")
    if key == AUGMENT:
        if low < 0 or high > 1:
            raise UserError(f"{where}: augment is a strength from 0 to 1, not {low}..{high}")
        return
    _check_value(key, low, where)
    _check_value(key, high, where)


def _check_value(key: str, value, where: str) -> None:
    if key == AUGMENT:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise UserError(f"{where}: augment is a strength from 0 to 1, not {value!r}")
        return
    if isinstance(value, dict | list):
        raise UserError(f"{where}: {key}'s values must be single values, not {value!r}")
    TrainConfig.check_types({key: value}, where)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _float_only(key: str) -> bool:
    """A number option that is never whole (lr, weight decay): {low: 0, high: 1} means reals."""
    if key == AUGMENT:
        return True
    hint = typing.get_type_hints(TrainConfig)[key]
    return int not in (typing.get_args(hint) or (hint,))
