"""Image corruptions that model real-world shifts, each at three severities, on uint8 NHWC batches.

They stand in for what a deployed model meets and its training data rarely shows: a dim room
(``low_light``), haze or a cheap sensor (``contrast``), sensor noise at high ISO
(``gaussian_noise``), a missed focus (``defocus_blur``) or a shaking hand (``motion_blur``), a
re-compressed upload (``jpeg``), a monochrome camera (``grayscale``), a different framing
(``crop_zoom``), a tilted camera (``rotation``) and something in front of the object
(``occlusion``). The choice follows ImageNet-C (Hendrycks and Dietterich, 2019) and adds the
geometric shifts it leaves out. Severity 1 is a mild, everyday shift and 3 a hard one.

Sizes (blur radii, streak lengths) are fractions of the image side, so a severity means the
same at 32 and at 224 pixels. Random draws (noise, angles, crop positions) depend only on the
seed and the corruption, not on the severity: severity 3 is severity 1 made stronger, not a
different image.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UserError

CORRUPTIONS: tuple[str, ...] = (
    "low_light", "contrast", "gaussian_noise", "defocus_blur", "motion_blur",
    "jpeg", "grayscale", "crop_zoom", "rotation", "occlusion",
)  # fmt: skip
SEVERITIES: tuple[int, ...] = (1, 2, 3)

# The parameter of each corruption at severities 1, 2, 3.
PARAMS: dict[str, tuple] = {
    "low_light": ((0.6, 1.3), (0.4, 1.6), (0.25, 2.0)),  # (brightness factor, gamma): dark and crushed shadows
    "contrast": (0.6, 0.4, 0.2),  # fraction of each pixel's deviation from the image mean that is kept
    "gaussian_noise": (8.0, 16.0, 32.0),  # standard deviation in 0..255 units
    "defocus_blur": (0.02, 0.035, 0.055),  # disc radius / image side (224 px: 4.5, 7.8, 12 px)
    "motion_blur": (0.06, 0.10, 0.16),  # streak length / image side, at a random angle per image
    "jpeg": (30, 15, 7),  # JPEG quality
    "grayscale": (0.5, 0.75, 1.0),  # fraction of the colour removed (1: pure luminance)
    "crop_zoom": (0.8, 0.6, 0.4),  # fraction of the area kept, at a random position, scaled back up
    "rotation": (10.0, 20.0, 35.0),  # degrees, clockwise or anticlockwise at random
    "occlusion": (0.1, 0.2, 0.35),  # fraction of the area covered by a rectangle of one random colour
}


def corrupt(pixels: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``pixels`` (uint8 NHWC, 3 channels or 1) with corruption ``name`` at ``severity`` (1..3): same shape and dtype.

    Batched (one tensor operation for the whole batch where the corruption allows) and
    deterministic for a given ``seed``.
    """
    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity must be 1, 2 or 3, not {severity!r}")
    x = np.asarray(pixels)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 pixels of shape (N, H, W, 1 or 3), got {x.dtype} {x.shape}")
    if len(x) == 0:
        return x.copy()
    if x.shape[-1] == 1:  # a grey model's input: corrupt it as the grey RGB image it shows, then back to one channel
        rgb = corrupt(np.repeat(x, 3, axis=-1), name, severity, seed)
        return np.round(rgb.astype(np.float32).mean(axis=-1, keepdims=True)).astype(np.uint8)
    # One stream per corruption, independent of the severity (see the module docstring).
    rng = np.random.default_rng([seed, CORRUPTIONS.index(name)])
    return _FUNCS[name](x, PARAMS[name][severity - 1], rng)


# ------------------------------------------------------------------------------------- helpers


def _to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in 0..255."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """float NCHW in 0..255 -> uint8 NHWC, rounded and clipped."""
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _clip(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _filter(x: np.ndarray, kernels: torch.Tensor) -> np.ndarray:
    """Convolve each image with its own kernel (``kernels``: (N, k, k), each summing to 1),
    with reflected borders: one grouped convolution over the whole batch."""
    n, h, w, c = x.shape
    k = kernels.shape[-1]
    t = _to_float(x).reshape(1, n * c, h, w)
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    t = F.pad(t, (pad, pad, pad, pad), mode=mode)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1).to(t.dtype)  # (N*C, 1, k, k)
    out = F.conv2d(t, weight, groups=n * c)
    return _to_uint8(out.reshape(n, c, h, w))


def _warp(x: np.ndarray, theta: torch.Tensor) -> np.ndarray:
    """Resample each image through its own affine map (``theta``: (N, 2, 3), normalised coordinates)."""
    t = _to_float(x)
    grid = F.affine_grid(theta.float(), list(t.shape), align_corners=False)
    return _to_uint8(F.grid_sample(t, grid, mode="bilinear", padding_mode="reflection", align_corners=False))


# --------------------------------------------------------------------------------- corruptions


def _low_light(x, p, rng):
    factor, gamma = p
    return _clip(255.0 * factor * (x.astype(np.float32) / 255.0) ** gamma)


def _contrast(x, keep, rng):
    f = x.astype(np.float32)
    mean = f.mean(axis=(1, 2, 3), keepdims=True)
    return _clip(mean + keep * (f - mean))


def _gaussian_noise(x, std, rng):
    return _clip(x.astype(np.float32) + std * rng.standard_normal(x.shape, dtype=np.float32))


def _defocus_blur(x, frac, rng):
    radius = max(0.5, frac * min(x.shape[1:3]))
    half = math.ceil(radius)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    # An anti-aliased disc: pixels half inside the circle weigh half, so small radii still blur.
    disc = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    kernel = torch.from_numpy(disc / disc.sum()).float()
    return _filter(x, kernel.expand(len(x), -1, -1))


def _motion_blur(x, frac, rng):
    n = len(x)
    length = max(1.0, frac * min(x.shape[1:3]))
    half = math.ceil(length / 2)
    size = 2 * half + 1
    angles = rng.uniform(0.0, math.pi, n)
    kernels = np.zeros((n, size, size), dtype=np.float32)
    steps = np.linspace(-length / 2, length / 2, 4 * size)
    for i, a in enumerate(angles):  # a line segment through the centre, splatted bilinearly
        px, py = half + steps * math.cos(a), half + steps * math.sin(a)
        x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
        fx, fy = px - x0, py - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = np.clip(x0 + dx, 0, size - 1), np.clip(y0 + dy, 0, size - 1)
            np.add.at(kernels[i], (yi, xi), wgt)
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    return _filter(x, torch.from_numpy(kernels))


def _jpeg(x, quality, rng):
    out = np.empty_like(x)
    for i, img in enumerate(x):  # Pillow's codec, the one most uploads went through
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def _grayscale(x, amount, rng):
    f = x.astype(np.float32)
    luma = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"
    return _clip((1 - amount) * f + amount * luma[..., None])


def _crop_zoom(x, area, rng):
    n = len(x)
    s = math.sqrt(area)
    shift = rng.uniform(-1.0, 1.0, (n, 2)) * (1 - s)  # the kept window stays inside the image
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = s
    theta[:, :, 2] = torch.from_numpy(shift)
    return _warp(x, theta)


def _rotation(x, degrees, rng):
    n, h, w = x.shape[:3]
    a = np.deg2rad(degrees) * rng.choice([-1.0, 1.0], n)
    cos, sin = torch.from_numpy(np.cos(a)), torch.from_numpy(np.sin(a))
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    # A rotation in pixel space, written in normalised coordinates (which stretch with the aspect).
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return _warp(x, theta)


def _occlusion(x, area, rng):
    n, h, w = x.shape[:3]
    out = x.copy()
    aspect = np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    pos = rng.random((n, 2))
    colour = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    for i in range(n):
        rh = min(h, max(1, round(math.sqrt(area * h * w * aspect[i]))))
        rw = min(w, max(1, round(area * h * w / rh)))
        top, left = int(pos[i, 0] * (h - rh)), int(pos[i, 1] * (w - rw))
        out[i, top : top + rh, left : left + rw] = colour[i]
    return out


_FUNCS = {
    "low_light": _low_light,
    "contrast": _contrast,
    "gaussian_noise": _gaussian_noise,
    "defocus_blur": _defocus_blur,
    "motion_blur": _motion_blur,
    "jpeg": _jpeg,
    "grayscale": _grayscale,
    "crop_zoom": _crop_zoom,
    "rotation": _rotation,
    "occlusion": _occlusion,
}
