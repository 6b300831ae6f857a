"""Geometric batch augmentation on uint8 NHWC tensors: flips, crops and translations, and one
``grid_sample`` warp for random resized crop, rotation and perspective. The conventions are those
of :mod:`imgclf.data.augment`; the helpers at the top are shared with the colour and policy modules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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
    """ITU-R 601 luma of float NHWC images, kept as (N, H, W, 1); the weights torchvision uses.
    A grayscale batch (one channel) is its own luma: contrast then works on it and saturation
    leaves it unchanged, as torchvision's adjustments do for one-channel images."""
    if f.shape[-1] == 1:
        return f
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
