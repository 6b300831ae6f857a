"""TrivialAugmentWide and RandAugment on uint8 NHWC batches: each image draws its op; the images
that drew one op are gathered and that op is applied to the group in one call."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .augment_colour import (
    _autocontrast,
    _brightness,
    _contrast,
    _equalize,
    _posterize,
    _saturation,
    _sharpness,
    _solarize,
)
from .augment_geometry import _pixel_to_normalised, _rand, _rotation_pixels, _to_uint8, _warp

# ------------------------------------------------------------------------------ TrivialAugment and RandAugment

POLICY_OPS = (
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
    "brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize",
)  # fmt: skip
_GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")


@dataclass(frozen=True)
class _Ranges:
    """The magnitude at level 1 (bin 30 of 31) of each op: torchvision's tables."""

    shear: float
    translate: float  # pixels; ``translate_is_fraction`` makes it a fraction of the side
    translate_is_fraction: bool
    rotate: float  # degrees
    enhance: float  # brightness/color/contrast/sharpness factor = 1 +- this
    posterize_drop: int  # bits = 8 - round(level * this)


TRIVIAL_WIDE = _Ranges(shear=0.99, translate=32.0, translate_is_fraction=False, rotate=135.0, enhance=0.99, posterize_drop=6)
RAND_AUGMENT = _Ranges(shear=0.3, translate=150 / 331, translate_is_fraction=True, rotate=30.0, enhance=0.9, posterize_drop=4)


def _policy_affine(op: torch.Tensor, mag: torch.Tensor, ranges: _Ranges, h: int, w: int) -> torch.Tensor:
    """(K,3,3) pixel-space output->input maps for samples that drew a geometric op, torchvision's
    conventions: shears anchored at the top-left corner, rotation about the centre, whole-pixel shifts."""
    k = op.shape[0]
    m = torch.eye(3, dtype=torch.float64).repeat(k, 1, 1)
    mag = mag.double()
    is_ = {name: op == POLICY_OPS.index(name) for name in _GEOMETRIC}
    m[:, 0, 1] = torch.where(is_["shear_x"], mag * ranges.shear, 0.0)
    m[:, 1, 0] = torch.where(is_["shear_y"], mag * ranges.shear, 0.0)
    tx = mag * (ranges.translate * w if ranges.translate_is_fraction else ranges.translate)
    ty = mag * (ranges.translate * h if ranges.translate_is_fraction else ranges.translate)
    m[:, 0, 2] = torch.where(is_["translate_x"], -tx.trunc(), 0.0)
    m[:, 1, 2] = torch.where(is_["translate_y"], -ty.trunc(), 0.0)
    rot = is_["rotate"]
    return torch.where(rot.view(k, 1, 1), _rotation_pixels(mag * ranges.rotate, h, w), m)


def _apply_policy_ops(x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor, ranges: _Ranges) -> torch.Tensor:
    """Apply op ``op[i]`` at ``level[i]`` in [0, 1] (times ``sign[i]`` for signed ops) to image i.

    ``op``, ``level`` and ``sign`` live on the CPU, so grouping costs no device synchronisation.
    The geometric ops share one nearest-neighbour warp with black fill (torchvision's defaults for
    these policies); each photometric op is one call on the group of images that drew it.
    """
    n, h, w, _ = x.shape
    mag = level * sign
    out = x.clone()
    geometric = torch.isin(op, torch.tensor([POLICY_OPS.index(name) for name in _GEOMETRIC]))
    if geometric.any():
        idx = geometric.nonzero().squeeze(1)
        theta = _pixel_to_normalised(_policy_affine(op[idx], mag[idx], ranges, h, w), h, w)
        dev_idx = idx.to(x.device)
        out[dev_idx] = _warp(x[dev_idx], theta, mode="nearest", padding_mode="zeros")
    for kind, name in enumerate(POLICY_OPS):  # a fixed set of 14 kinds, never the images
        if name == "identity" or name in _GEOMETRIC:
            continue
        sel = op == kind
        if not sel.any():
            continue
        idx = sel.nonzero().squeeze(1)
        dev_idx = idx.to(x.device)
        group = x[dev_idx]
        if name in ("brightness", "color", "contrast", "sharpness"):
            fn = {"brightness": _brightness, "color": _saturation, "contrast": _contrast, "sharpness": _sharpness}[name]
            factor = (1 + mag[idx] * ranges.enhance).float().to(x.device)
            result = _to_uint8(fn(group.float(), factor))
        elif name == "posterize":
            result = _posterize(group, (8 - (level[idx] * ranges.posterize_drop).round()).to(x.device))
        elif name == "solarize":
            result = _solarize(group, (255 * (1 - level[idx])).float().to(x.device))
        elif name == "autocontrast":
            result = _autocontrast(group)
        else:
            result = _equalize(group)
        out[dev_idx] = result
    return out


def trivial_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """TrivialAugmentWide: each image gets one of the 14 ops at a uniformly drawn magnitude bin (of 31)
    and, for signed ops, a random sign."""
    n = x.shape[0]
    op = torch.randint(0, len(POLICY_OPS), (n,), generator=generator, device=generator.device).cpu()
    level = torch.randint(0, 31, (n,), generator=generator, device=generator.device).cpu().double() / 30
    sign = _signs(op, generator)
    return _apply_policy_ops(x, op, level, sign, TRIVIAL_WIDE)


def rand_augment(x: torch.Tensor, num_ops: int, magnitude: int, generator: torch.Generator) -> torch.Tensor:
    """RandAugment: ``num_ops`` rounds, each giving every image one uniformly drawn op at the fixed
    ``magnitude`` (bin 0..30 of 31) with a random sign for signed ops."""
    n = x.shape[0]
    level = torch.full((n,), magnitude / 30, dtype=torch.float64)
    for _ in range(num_ops):  # a handful of rounds, each vectorised over the batch
        op = torch.randint(0, len(POLICY_OPS), (n,), generator=generator, device=generator.device).cpu()
        x = _apply_policy_ops(x, op, level, _signs(op, generator), RAND_AUGMENT)
    return x


def _signs(op: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = _rand(generator, op.shape[0]).cpu() < 0.5
    return torch.where(flip, -1.0, 1.0).double()
