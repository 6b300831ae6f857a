"""Build a model by name: imgclf's compact nets first, then anything in timm's zoo."""

from __future__ import annotations

import difflib
import fnmatch
import inspect

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


def create_model(
    name: str,
    num_classes: int,
    *,
    img_size: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    **kwargs,
) -> nn.Module:
    """A freshly initialised model with a ``num_classes``-way head.

    ``img_size`` is passed to timm models that need it (ViTs size their position embeddings by
    it). ``drop_rate`` (dropout before the head) and ``drop_path_rate`` (stochastic depth) are
    refused, not ignored, by models that have no such thing.
    """
    if name in COMPACT_MODELS:
        builder = COMPACT_MODELS[name][0]
        if drop_path_rate:
            raise UserError(f"{name} has no stochastic depth; --drop-path needs a timm model with residual blocks")
        if drop_rate is not None:
            if "drop_rate" not in inspect.signature(builder).parameters:
                raise UserError(f"{name} has no dropout layer; leave --dropout unset for it")
            kwargs["drop_rate"] = drop_rate
        return builder(num_classes=num_classes, **kwargs)
    if not timm.is_model(name):
        raise UserError(_unknown_model_message(name))
    if img_size is not None and _takes_img_size(name):
        kwargs.setdefault("img_size", img_size)
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        if "drop_path_rate" in str(exc):
            raise UserError(f"{name} does not support stochastic depth (--drop-path)") from None
        raise


def _takes_img_size(name: str) -> bool:
    # Transformers and MLP mixers fix their token grid at construction; CNNs accept any size.
    prefixes = ("vit", "deit", "beit", "eva", "swin", "cait", "xcit", "mixer", "pit", "tnt", "levit", "crossvit")
    return name.split("_")[0].startswith(prefixes)


def _unknown_model_message(name: str) -> str:
    candidates = list(COMPACT_MODELS) + timm.list_models()
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `imgclf models` lists the available ones"
    return f"unknown model {name!r}{hint}"


# The families the seed documents name, as timm models: what `imgclf models` shows by default
# beside the compact nets.
FEATURED_TIMM = (
    "resnet18", "resnet50", "vgg11_bn", "inception_v3", "densenet121",
    "mobilenetv3_small_100", "mobilenetv3_large_100", "efficientnet_b0", "convnext_atto",
    "vit_tiny_patch16_224", "deit_tiny_patch16_224",
)  # fmt: skip


def list_models(filter_text: str | None = None, *, img_size: int | None = None, num_classes: int = 10, limit: int = 50) -> list[dict]:
    """Model names with parameter count and forward GFLOPs per image at ``img_size``.

    Without a filter: imgclf's compact nets and the featured timm families; with one: every
    matching name (substring, or a glob with ``*``), statistics for the first ``limit``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if filter_text:
        pattern = filter_text if "*" in filter_text else f"*{filter_text}*"
        names = [n for n in COMPACT_MODELS if fnmatch.fnmatch(n, pattern)] + timm.list_models(pattern)
    else:
        names = list(COMPACT_MODELS) + list(FEATURED_TIMM)
    rows = []
    for i, name in enumerate(names):
        row = {"name": name, "source": "imgclf" if name in COMPACT_MODELS else "timm",
               "default_img_size": default_img_size(name), "params": None, "gflops": None,
               "description": COMPACT_MODELS[name][2] if name in COMPACT_MODELS else ""}  # fmt: skip
        if i < limit:
            size = img_size or row["default_img_size"]
            try:
                model = create_model(name, num_classes, img_size=size).eval()
                row["params"] = sum(p.numel() for p in model.parameters())
                with FlopCounterMode(display=False) as counter, torch.no_grad():
                    model(torch.zeros(1, 3, size, size))
                row["gflops"] = counter.get_total_flops() / 1e9
            except Exception as exc:  # noqa: BLE001 - e.g. an input too small for the architecture
                small = "Kernel size" in str(exc) or "too small" in str(exc)
                row["error"] = f"does not run at {size}px: try a larger --img-size" if small else str(exc).splitlines()[0][:80]
        rows.append(row)
    return rows
