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

The transforms live in :mod:`.augment_geometry`, :mod:`.augment_colour` and
:mod:`.augment_policies`; this module configures them into one pipeline, :class:`Augment`.
"""

from __future__ import annotations

import torch

from .augment_colour import random_color_jitter, random_erasing, random_noise
from .augment_geometry import _check_batch, alternating_flip, random_crop, random_flip, random_warp
from .augment_policies import rand_augment, trivial_augment

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
