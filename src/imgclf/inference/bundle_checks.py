"""Checks of ``model.json``'s values: each returns the typed value or raises one-sentence UserError.

``model.json`` is read from disk (a run someone copied, edited or damaged) and, through an ONNX
export's metadata, from files of unknown origin, so nothing in it is trusted: every value is
checked for type and range before anything allocates memory or builds a model from it.
"""

from __future__ import annotations

import math
from typing import Any

from ..data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, grey_stats
from ..errors import UserError
from .names import CHANNEL_COUNTS, IMG_SIZE_MAX, IMG_SIZE_MIN, INTERPOLATIONS, LEGACY_RESIZE_NAMES, RESIZE_MODES, TTA_MODES

# Keyword arguments model.json may pass to the model factory, with a check of each value. Anything
# else is refused: timm's create_model also takes keys that read files (checkpoint_path,
# pretrained_cfg_overlay=dict(file=...)) or fetch weights, and a bundle must never make it do that.
_GLOBAL_POOLS = ("", "avg", "max", "avgmax", "catavgmax", "token", "map")


def _fraction(v) -> bool:
    return is_number(v) and 0.0 <= v < 1.0


MODEL_KWARGS = {
    "drop_rate": (_fraction, "a number in [0, 1)"),
    "drop_path_rate": (_fraction, "a number in [0, 1)"),
    "global_pool": (lambda v: v in _GLOBAL_POOLS, f"one of {', '.join(repr(p) for p in _GLOBAL_POOLS)}"),
    "patch": (lambda v: is_int(v) and 1 <= v <= 64, "a whole number from 1 to 64"),
    "widths": (
        lambda v: isinstance(v, list) and 1 <= len(v) <= 8 and all(is_int(w) and 1 <= w <= 4096 for w in v),
        "a list of 1 to 8 whole numbers from 1 to 4096",
    ),
}


def is_number(v: Any) -> bool:
    """A finite int or float (JSON's numbers), not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def bad(where: str, problem: str) -> UserError:
    """The one sentence every violation gets: where, what, and what to do."""
    return UserError(f"{where}: {problem}; the model bundle is damaged or was edited by hand, so train or export it again")


def check_architecture(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise bad(where, "architecture must be a model name")
    return value


def check_classes(where: str, value: Any, num_classes: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise bad(where, "classes must be a non-empty list of class names")
    if not all(isinstance(c, str) for c in value):
        raise bad(where, "every class name must be a string")
    if len(set(value)) != len(value):
        raise bad(where, "classes names a class twice")
    if num_classes is not None and (not is_int(num_classes) or num_classes != len(value)):
        raise bad(where, f"num_classes is {num_classes!r} but classes lists {len(value)} names")
    return tuple(value)


def check_preprocess(where: str, value: Any) -> Preprocess:
    if not isinstance(value, dict):
        raise bad(where, "preprocess must be an object")
    size = value.get("img_size")
    if not is_int(size) or not IMG_SIZE_MIN <= size <= IMG_SIZE_MAX:
        raise bad(where, f"img_size must be a whole number from {IMG_SIZE_MIN} to {IMG_SIZE_MAX}, not {_show(size)}")
    channels = value.get("channels", 3)
    if not is_int(channels) or channels not in CHANNEL_COUNTS:
        raise bad(where, f"preprocess channels must be 1 (grayscale) or 3 (RGB), not {_show(channels)}")
    default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else grey_stats(IMAGENET_MEAN, IMAGENET_STD)
    mean = _channel_stats(where, "mean", value.get("mean", list(default_mean)), channels, positive=False)
    std = _channel_stats(where, "std", value.get("std", list(default_std)), channels, positive=True)
    interpolation = value.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        raise bad(where, f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {_show(interpolation)}")
    resize = value.get("resize", "crop")
    resize = LEGACY_RESIZE_NAMES.get(resize, resize) if isinstance(resize, str) else resize
    if resize not in RESIZE_MODES:
        raise bad(where, f"resize must be one of {', '.join(RESIZE_MODES)}, not {_show(resize)}")
    return Preprocess(img_size=size, mean=mean, std=std, interpolation=interpolation, resize=resize, channels=channels)


def _channel_stats(where: str, name: str, value: Any, channels: int, *, positive: bool) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != channels or not all(is_number(v) for v in value):
        per = "one per RGB channel" if channels == 3 else "for the grey channel"
        raise bad(where, f"preprocess {name} must be a list of {channels} finite number{'s' * (channels > 1)} ({per})")
    if positive and not all(v > 0 for v in value):
        raise bad(where, f"preprocess {name} must be positive")
    return tuple(float(v) for v in value)


def check_temperature(where: str, value: Any) -> float:
    if not is_number(value) or value <= 0:
        raise bad(where, f"temperature must be a positive finite number, not {_show(value)}")
    return float(value)


def check_tta(where: str, value: Any) -> str:
    if value not in TTA_MODES:
        raise bad(where, f"tta must be one of {', '.join(TTA_MODES)}, not {_show(value)}")
    return value


def check_model_kwargs(where: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise bad(where, "model_kwargs must be an object")
    for key, v in value.items():
        if key not in MODEL_KWARGS:
            raise bad(where, f"model_kwargs may not set {_show(key)} (allowed: {', '.join(MODEL_KWARGS)})")
        ok, expected = MODEL_KWARGS[key]
        if not ok(v):
            raise bad(where, f"model_kwargs {key} must be {expected}, not {_show(v)}")
    return dict(value)


def check_unsure(where: str, value: Any) -> dict | None:
    """The "unsure" threshold evaluation stored: None (no threshold reached the target) or
    {"threshold", "target_accuracy", "coverage"} with probabilities in [0, 1]."""
    if value is None:
        return None
    if not isinstance(value, dict) or "threshold" not in value:
        raise bad(where, "unsure_threshold must be null or an object with a threshold")
    out = {}
    for key in ("threshold", "target_accuracy", "coverage"):
        v = value.get(key)
        if v is None and key != "threshold":
            out[key] = None
            continue
        if not is_number(v) or not 0.0 <= v <= 1.0:
            raise bad(where, f"unsure_threshold {key} must be a number from 0 to 1, not {_show(v)}")
        out[key] = float(v)
    return out


def _show(value: Any) -> str:
    """A value for an error message, cut short (a fuzzed or hostile file can hold megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
