"""Build a model by name: imgclf's compact nets first, then anything in timm's zoo."""

from __future__ import annotations

import difflib

import timm
from torch import nn

from ..errors import UserError
from .compact import COMPACT_MODELS


def is_known(name: str) -> bool:
    return name in COMPACT_MODELS or timm.is_model(name)


def default_img_size(name: str) -> int:
    """The input size a model is designed for (32 for compact nets, timm's pretrained config else)."""
    if name in COMPACT_MODELS:
        return COMPACT_MODELS[name][1]
    cfg = timm.get_pretrained_cfg(name)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else 224


def create_model(name: str, num_classes: int, *, img_size: int | None = None, **kwargs) -> nn.Module:
    """A freshly initialised model with a ``num_classes``-way head.

    ``img_size`` is passed to timm models that need it (ViTs size their position embeddings by it).
    """
    if name in COMPACT_MODELS:
        builder = COMPACT_MODELS[name][0]
        return builder(num_classes=num_classes, **kwargs)
    if not timm.is_model(name):
        raise UserError(_unknown_model_message(name))
    if img_size is not None and _takes_img_size(name):
        kwargs.setdefault("img_size", img_size)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def _takes_img_size(name: str) -> bool:
    # Transformers and MLP mixers fix their token grid at construction; CNNs accept any size.
    prefixes = ("vit", "deit", "beit", "eva", "swin", "cait", "xcit", "mixer", "pit", "tnt", "levit", "crossvit")
    return name.split("_")[0].startswith(prefixes)


def _unknown_model_message(name: str) -> str:
    candidates = list(COMPACT_MODELS) + timm.list_models()
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `imgclf models` lists the available ones"
    return f"unknown model {name!r}{hint}"
