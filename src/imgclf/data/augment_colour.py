"""Photometric batch augmentation on uint8 NHWC tensors: per-sample colour factors (brightness,
contrast, saturation, sharpness, posterize, solarize, autocontrast, equalize), colour jitter,
Gaussian noise and random erasing. The conventions are those of :mod:`imgclf.data.augment`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from .augment_geometry import _grayscale, _per_sample, _pixel_generator, _rand, _to_uint8, _uniform

# ------------------------------------------------------------------------------ photometric ops, per-sample factors
# Each takes float NHWC in 0..255 and per-sample (N,) parameters on the images' device; the
# formulas are torchvision's (v2.functional), which take one shared factor per call instead.


def _brightness(f: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (f * _per_sample(factor)).clamp_(0, 255)


def _contrast(f: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _grayscale(f).mean(dim=(1, 2, 3), keepdim=True)
    k = _per_sample(factor)
    return (f * k + mean * (1 - k)).clamp_(0, 255)


def _saturation(f: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    k = _per_sample(factor)
    return (f * k + _grayscale(f) * (1 - k)).clamp_(0, 255)


def _sharpness(f: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's smoothing kernel (border pixels keep their value, as in PIL/torchvision)."""
    n, h, w, c = f.shape
    if h <= 2 or w <= 2:
        return f
    nchw = f.permute(0, 3, 1, 2)
    # Kernel [[1,1,1],[1,5,1],[1,1,1]]/13 as a 3x3 box sum plus 4x the centre: avg_pool2d is a plain
    # kernel, where conv2d would go through cuDNN, which plans afresh for every new group size
    # (measured on an H100: TrivialAugment 99 +- 79 ms per 512 batch with conv2d, mostly planning).
    centre = nchw[..., 1:-1, 1:-1]
    blurred = ((F.avg_pool2d(nchw, 3, stride=1) * 9 + 4 * centre) / 13).round_()
    degenerate = nchw.clone()
    degenerate[..., 1:-1, 1:-1] = blurred
    k = factor.view(-1, 1, 1, 1)
    return (nchw * k + degenerate * (1 - k)).clamp_(0, 255).permute(0, 2, 3, 1)


def _posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top ``bits`` bits (1..8) of every channel."""
    mask = (256 - torch.pow(2, 8 - bits.long())).to(torch.uint8)  # 8 bits: 255, 2 bits: 192
    return x & _per_sample(mask)


def _solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert the pixels at or above the per-sample threshold."""
    return torch.where(x.float() >= _per_sample(threshold), 255 - x, x)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    return TF.autocontrast(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    # torchvision's equalize is already batched (one scatter_add histogram per image and channel)
    # and reproduces PIL's lookup table exactly.
    return TF.equalize(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def random_color_jitter(x: torch.Tensor, strengths: tuple[float, float, float], generator: torch.Generator) -> torch.Tensor:
    """torchvision ColorJitter(brightness, contrast, saturation) with per-image factors.

    Each factor is uniform in [max(0, 1 - s), 1 + s]. The three adjustments are applied in a fixed
    order (brightness, contrast, saturation); torchvision shuffles the order on every call.
    """
    n = x.shape[0]
    steps = [(s, fn) for s, fn in zip(strengths, (_brightness, _contrast, _saturation)) if s > 0]
    if not steps:
        return x
    factors = [_uniform(generator, (n,), max(0.0, 1 - s), 1 + s).to(x.device) for s, _ in steps]
    f = x.float()
    for (_, fn), factor in zip(steps, factors):  # at most three fixed kinds, never per image
        f = fn(f, factor)
    return _to_uint8(f)


def random_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add Gaussian noise of ``std`` (in 0..255 units) to every channel of every pixel, then clamp."""
    if std <= 0:
        return x
    g = _pixel_generator(generator, x.device)
    noise = torch.randn(x.shape, generator=g, device=x.device)
    return _to_uint8(x.float() + noise * std)


def random_erasing(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """torchvision RandomErasing: with probability ``p`` replace one rectangle per image by uniform
    random uint8 noise. Rectangle sampling (10 tries, else no erase) is vectorised over the batch
    and applied as a coordinate mask."""
    if p <= 0:
        return x
    n, h, w, _ = x.shape
    tries = 10
    target = h * w * _uniform(generator, (n, tries), scale[0], scale[1])
    r = torch.exp(_uniform(generator, (n, tries), math.log(ratio[0]), math.log(ratio[1])))
    eh = torch.sqrt(target * r).round()
    ew = torch.sqrt(target / r).round()
    ok = (eh < h) & (ew < w)
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)
    eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
    apply = (_rand(generator, n) < p) & ok.any(dim=1)
    top = (_rand(generator, n) * (h - eh + 1)).floor()
    left = (_rand(generator, n) * (w - ew + 1)).floor()
    params = torch.stack([top, left, top + eh, left + ew, apply.float()], dim=1).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    t, left_, b, r_, a = (params[:, i].view(n, 1, 1) for i in range(5))
    mask = (rows >= t) & (rows < b) & (cols >= left_) & (cols < r_) & (a > 0)
    g = _pixel_generator(generator, x.device)
    fill = torch.randint(0, 256, x.shape, generator=g, device=x.device, dtype=torch.uint8)
    return torch.where(mask.unsqueeze(-1), fill, x)
