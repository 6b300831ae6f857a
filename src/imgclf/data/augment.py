"""Batched augmentation on uint8 NHWC tensors: one vectorised op per transform per batch.

Per-sample randomness comes from per-sample parameter tensors (offsets, angles, factors, masks),
never from a Python loop over images, so augmentation costs a few tensor ops per batch whatever
the batch size. The only Python loops are over a fixed, small number of operation kinds
(TrivialAugment / RandAugment: the samples that drew one op are gathered and that op is applied
to the group in one call).

Conventions shared by every function here:

- images are ``(N, H, W, C)`` uint8 tensors on any device; the result has the same shape, dtype
  and device, and is rounded (not truncated) back to uint8;
- every random number comes from the CPU ``torch.Generator`` the caller passes: per-sample
  parameters are drawn on the CPU and moved to the images' device. Per-pixel noise on an
  accelerator is drawn from a device generator seeded from that CPU generator, so a run is
  reproducible on a given device (CPU and CUDA draw different noise, the same everything else);
- all geometric transforms of one kind of call share one ``grid_sample``: random resized crop,
  rotation and perspective are composed into one 3x3 matrix per sample and sampled once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

# ------------------------------------------------------------------------------ helpers


def _rand(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def _uniform(generator: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * _rand(generator, *shape)


def _pixel_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """Per-pixel noise is drawn where the pixels are; copying it from the CPU would cost more than the op."""
    if generator.device == device:
        return generator
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def _to_uint8(f: torch.Tensor) -> torch.Tensor:
    return f.round_().clamp_(0, 255).to(torch.uint8)


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    """(N,) parameters broadcast against NHWC images."""
    return v.view(-1, 1, 1, 1)


def _grayscale(f: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of float NHWC images, kept as (N, H, W, 1); the weights torchvision uses."""
    return (f[..., 0:1] * 0.2989 + f[..., 1:2] * 0.587 + f[..., 2:3] * 0.114)


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.dtype != torch.uint8:
        raise ValueError(f"augmentation expects uint8 NHWC batches, got {tuple(x.shape)} {x.dtype}")


# ------------------------------------------------------------------------------ flips and translation


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right (NHWC: width is dim 2)."""
    mask = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(_per_sample(mask.to(x.device)), x.flip(2), x)


def _hash32(i: torch.Tensor, seed: int) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32-style) of index and seed; products stay below 2**59, so int64 never wraps."""
    s = seed & 0xFFFFFFFF
    for _ in range(2):  # mix the seed on its own first, so nearby seeds give unrelated patterns
        s = (((s >> 16) ^ s) * 0x45D9F3B) & 0xFFFFFFFF
    h = (i.long() & 0xFFFFFFFF) ^ s
    h = (((h >> 16) ^ h) * 0x45D9F3B) & 0xFFFFFFFF
    h = (((h >> 16) ^ h) * 0x45D9F3B) & 0xFFFFFFFF
    return (h >> 16) ^ h


def alternating_flip(x: torch.Tensor, sample_index: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """airbench's derandomised flip: sample i is mirrored in epoch e iff (hash(i, seed) + e) % 2 == 1.

    Every image is seen mirrored exactly every other epoch, instead of a coin flip each time (which
    shows some images unflipped several epochs running); airbench measured this worth about as much
    as 10% more epochs on CIFAR-10. ``sample_index`` holds each row's stable dataset index.
    """
    if sample_index.shape != (x.shape[0],):
        raise ValueError(f"sample_index must have one entry per image: {tuple(sample_index.shape)} vs {x.shape[0]}")
    mask = ((_hash32(sample_index, seed) & 1) + (epoch & 1)) % 2 == 1
    return torch.where(_per_sample(mask.to(x.device)), x.flip(2), x)


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    """Index reflection without repeating the edge (F.pad 'reflect'), valid for |overshoot| < size."""
    i = i.abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator, *, flip: bool = False) -> torch.Tensor:
    """Pad by ``padding`` (reflecting the border) and crop back to size at a random offset per image.

    The padding is never materialised: reflected row/column indices gather straight from ``x``.
    With ``flip``, a random half of the batch is also mirrored within the same gather (reversed
    column indices), drawing the same random numbers as ``random_flip`` after ``random_crop``.
    """
    if padding <= 0:
        return random_flip(x, generator) if flip else x
    n, h, w, _ = x.shape
    if padding >= min(h, w):
        raise ValueError(f"padding {padding}px must be smaller than the image ({h}x{w})")
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(x.device)
    rows = _reflect(dy.view(n, 1) - padding + torch.arange(h, device=x.device), h).view(n, h, 1)
    cols = _reflect(dx.view(n, 1) - padding + torch.arange(w, device=x.device), w)
    if flip:
        mirror = torch.rand(n, generator=generator, device=generator.device).to(x.device) < 0.5
        cols = torch.where(mirror.view(n, 1), cols.flip(1), cols)
    # One index_select of whole pixels (rows of C bytes) by a linear index: 2-3x faster on a CPU
    # than the equivalent x[n, rows, cols] advanced indexing, with the same result.
    first = torch.arange(n, device=x.device).view(n, 1, 1) * (h * w)
    pixel = (first + rows * w + cols.view(n, 1, w)).view(-1)
    return x.reshape(n * h * w, -1).index_select(0, pixel).view(x.shape)


def random_translate(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y, filling with the reflected border (airbench)."""
    return random_crop(x, pixels, generator)


# ------------------------------------------------------------------------------ one warp for all geometry


def _pixel_to_normalised(a: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Conjugate (N,3,3) output->input maps in pixel coordinates (origin at the top-left corner,
    pixel centres at i + 0.5) into grid_sample's normalised coordinates (align_corners=False)."""
    to_norm = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]], dtype=a.dtype, device=a.device)
    to_pix = torch.tensor([[w / 2, 0, w / 2], [0, h / 2, h / 2], [0, 0, 1]], dtype=a.dtype, device=a.device)
    return to_norm @ a @ to_pix


def _warp(x: torch.Tensor, theta: torch.Tensor, *, mode: str, padding_mode: str) -> torch.Tensor:
    """Resample every image through its own (N,3,3) projective map from output to input
    normalised coordinates, in one grid_sample call. Identity maps reproduce the image exactly."""
    n, h, w, _ = x.shape
    theta = theta.to(device=x.device, dtype=torch.float32)
    ys = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5) * (2 / h) - 1
    xs = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5) * (2 / w) - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # (H, W, 3)
    pts = torch.einsum("nij,hwj->nhwi", theta, base)
    z = pts[..., 2:]
    # Beyond a strong perspective's horizon z reaches 0 or flips sign; those pixels are fill anyway,
    # so keep them finite rather than NaN.
    z = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    grid = (pts[..., :2] / z).clamp_(-8, 8)
    out = F.grid_sample(x.permute(0, 3, 1, 2).float(), grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return _to_uint8(out).permute(0, 2, 3, 1).contiguous()


def _resized_crop_theta(n: int, h: int, w: int, scale: tuple[float, float], generator: torch.Generator,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), tries: int = 10) -> torch.Tensor:
    """torchvision RandomResizedCrop's box sampling, vectorised: 10 candidate boxes per image, the
    first that fits wins (the whole image if none does); integer boxes as in torchvision."""
    area = h * w
    target = area * _uniform(generator, (n, tries), scale[0], scale[1])
    log_r = _uniform(generator, (n, tries), math.log(ratio[0]), math.log(ratio[1]))
    cw = torch.sqrt(target * torch.exp(log_r)).round()
    ch = torch.sqrt(target / torch.exp(log_r)).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)
    any_ok = ok.any(dim=1)
    cw = torch.where(any_ok, cw.gather(1, first).squeeze(1), torch.full((n,), float(w)))
    ch = torch.where(any_ok, ch.gather(1, first).squeeze(1), torch.full((n,), float(h)))
    top = (_rand(generator, n) * (h - ch + 1)).floor()
    left = (_rand(generator, n) * (w - cw + 1)).floor()
    theta = torch.zeros(n, 3, 3, dtype=torch.float64)
    theta[:, 0, 0] = cw / w
    theta[:, 0, 2] = (2 * left + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * top + ch) / h - 1
    theta[:, 2, 2] = 1
    return theta


def _rotation_pixels(angle_deg: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N,3,3) pixel-space rotations about the image centre."""
    a = torch.deg2rad(angle_deg.double())
    cos, sin = torch.cos(a), torch.sin(a)
    cx, cy = w / 2, h / 2
    m = torch.zeros(a.shape[0], 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    m[:, 0, 2] = cx - cos * cx + sin * cy
    m[:, 1, 2] = cy - sin * cx - cos * cy
    m[:, 2, 2] = 1
    return m


def _perspective_theta(n: int, distortion: float, generator: torch.Generator) -> torch.Tensor:
    """torchvision RandomPerspective's corner model: each corner of the output moves inward by up to
    ``distortion`` x half the size along each axis; the (N,3,3) homography maps those moved corners
    back onto the input's corners (batched 8x8 solve)."""
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    inward = -corners  # the direction towards the centre, per axis
    moved = corners + inward * distortion * _rand(generator, n, 4, 2).double()
    x, y = moved[..., 0], moved[..., 1]  # output points (N, 4)
    u, v = corners[:, 0].expand(n, 4), corners[:, 1].expand(n, 4)  # where they sample the input
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # (N, 8, 8)
    b = torch.cat([u, v], dim=1)  # (N, 8)
    hvec = torch.linalg.solve(a, b)
    return torch.cat([hvec, torch.ones(n, 1, dtype=torch.float64)], dim=1).view(n, 3, 3)


def random_warp(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] | None = None,
    rotation: float = 0.0,
    perspective: float = 0.0,
) -> torch.Tensor:
    """Random resized crop, then rotation, then perspective, as one bilinear grid_sample.

    ``scale``: area range of the crop (aspect 3/4..4/3), resized back to the input size;
    ``rotation``: angle uniform in [-rotation, rotation] degrees about the centre;
    ``perspective``: torchvision's distortion scale in [0, 1], applied to every image (not to a
    random half, torchvision's default p=0.5: lower the scale for milder augmentation).
    Pixels sampled from outside the source are filled by reflection (not black), so rotated and
    distorted images have no artificial borders for the model to learn.
    """
    if scale is None and not rotation and not perspective:
        return x
    n, h, w, _ = x.shape
    theta = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    if scale is not None:
        theta = _resized_crop_theta(n, h, w, scale, generator)
    if rotation:
        angles = _uniform(generator, (n,), -rotation, rotation)
        theta = theta @ _pixel_to_normalised(_rotation_pixels(angles, h, w), h, w)
    if perspective:
        theta = theta @ _perspective_theta(n, perspective, generator)
    return _warp(x, theta, mode="bilinear", padding_mode="reflection")


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Crop a random box of ``scale`` x the area (aspect 3/4..4/3) and resize it back (bilinear)."""
    return random_warp(x, generator, scale=scale)


def random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] (bilinear, reflection fill)."""
    return random_warp(x, generator, rotation=degrees)


def random_perspective(x: torch.Tensor, distortion: float, generator: torch.Generator) -> torch.Tensor:
    """Perspective-distort every image, torchvision's distortion scale in [0, 1] (bilinear, reflection fill)."""
    return random_warp(x, generator, perspective=distortion)


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
    t, l, b, r_, a = (params[:, i].view(n, 1, 1) for i in range(5))
    mask = (rows >= t) & (rows < b) & (cols >= l) & (cols < r_) & (a > 0)
    g = _pixel_generator(generator, x.device)
    fill = torch.randint(0, 256, x.shape, generator=g, device=x.device, dtype=torch.uint8)
    return torch.where(mask.unsqueeze(-1), fill, x)


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


# ------------------------------------------------------------------------------ the configured pipeline


class Augment:
    """The training-time transforms, configured once and applied per batch.

    Order: warp (random resized crop, rotation, perspective) -> translate -> flip ->
    TrivialAugment -> RandAugment -> colour jitter -> noise -> erasing. Every option but ``flip``
    defaults to off; with only ``flip`` and ``crop_padding`` the draws and results are those of
    earlier versions.

    ``translate`` (pixels) and ``crop_padding`` (a fraction of ``img_size``) are the same
    transform; when ``translate`` is set it takes precedence. ``alternating_flip`` replaces the
    random flip whatever ``flip`` says, and needs the batch's dataset ``indices`` and the ``epoch``
    at call time; ``seed`` fixes its per-image pattern.
    """

    def __init__(
        self,
        img_size: int,
        *,
        flip: bool = True,
        crop_padding: float = 0.0,
        translate: int = 0,
        alternating_flip: bool = False,
        seed: int = 0,
        random_resized_crop: tuple[float, float] | None = None,
        rotation: float = 0.0,
        perspective: float = 0.0,
        color_jitter: tuple[float, float, float] | None = None,
        noise: float = 0.0,
        erasing: float = 0.0,
        trivial_augment: bool = False,
        rand_augment: tuple[int, int] | None = None,
    ):
        if random_resized_crop is not None:
            lo, hi = random_resized_crop
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"random_resized_crop scale must satisfy 0 < low <= high <= 1, got {random_resized_crop}")
            random_resized_crop = (float(lo), float(hi))
        if color_jitter is not None:
            if len(color_jitter) != 3 or min(color_jitter) < 0:
                raise ValueError(f"color_jitter must be three non-negative strengths, got {color_jitter}")
            color_jitter = tuple(float(s) for s in color_jitter) if any(color_jitter) else None
        if rand_augment is not None:
            num_ops, magnitude = rand_augment
            if num_ops < 0 or not 0 <= magnitude <= 30:
                raise ValueError(f"rand_augment must be (num_ops >= 0, magnitude 0..30), got {rand_augment}")
            rand_augment = (int(num_ops), int(magnitude)) if num_ops else None
        checks = [
            (translate >= 0, "translate must be a non-negative number of pixels"),
            (rotation >= 0, "rotation must be a non-negative number of degrees"),
            (0 <= perspective <= 1, "perspective distortion must be in [0, 1]"),
            (noise >= 0, "noise std must be non-negative"),
            (0 <= erasing <= 1, "erasing probability must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.flip = flip
        self.alternating_flip = alternating_flip
        self.seed = seed
        self.padding = int(translate) if translate else int(round(crop_padding * img_size))
        self.resized_crop = random_resized_crop
        self.rotation = float(rotation)
        self.perspective = float(perspective)
        self.jitter = color_jitter
        self.noise = float(noise)
        self.erasing = float(erasing)
        self.trivial = trivial_augment
        self.rand = rand_augment

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator,
        indices: torch.Tensor | None = None,
        epoch: int | None = None,
    ) -> torch.Tensor:
        _check_batch(x)
        x = random_warp(x, generator, scale=self.resized_crop, rotation=self.rotation, perspective=self.perspective)
        random_mirror = self.flip and not self.alternating_flip
        if self.padding:  # crop and random flip in one gather
            x = random_crop(x, self.padding, generator, flip=random_mirror)
        if self.alternating_flip:
            if indices is None or epoch is None:
                raise ValueError("alternating_flip needs the batch's dataset indices and the epoch: augment(x, gen, indices, epoch)")
            x = alternating_flip(x, torch.as_tensor(indices), epoch, self.seed)
        elif random_mirror and not self.padding:
            x = random_flip(x, generator)
        if self.trivial:
            x = trivial_augment(x, generator)
        if self.rand:
            x = rand_augment(x, *self.rand, generator)
        if self.jitter:
            x = random_color_jitter(x, self.jitter, generator)
        if self.noise:
            x = random_noise(x, self.noise, generator)
        if self.erasing:
            x = random_erasing(x, self.erasing, generator)
        return x

    def describe(self) -> list[str]:
        out = []
        if self.resized_crop:
            lo, hi = self.resized_crop
            out.append(f"random resized crop (area {lo:g}-{hi:g}, aspect 3/4-4/3)")
        if self.rotation:
            out.append(f"rotation (up to {self.rotation:g} deg, reflect fill)")
        if self.perspective:
            out.append(f"perspective (distortion {self.perspective:g}, reflect fill)")
        if self.padding:
            out.append(f"random crop (pad {self.padding}px)")
        if self.alternating_flip:
            out.append("alternating horizontal flip")
        elif self.flip:
            out.append("horizontal flip")
        if self.trivial:
            out.append("TrivialAugmentWide")
        if self.rand:
            out.append(f"RandAugment ({self.rand[0]} ops, magnitude {self.rand[1]})")
        if self.jitter:
            b, c, s = self.jitter
            out.append(f"color jitter (brightness {b:g}, contrast {c:g}, saturation {s:g})")
        if self.noise:
            out.append(f"gaussian noise (std {self.noise:g})")
        if self.erasing:
            out.append(f"random erasing (p {self.erasing:g})")
        return out or ["none"]
