"""Batched augmentation on uint8 NHWC tensors: one vectorised op per transform per batch.

Per-sample randomness comes from per-sample parameters (offsets, masks), never from a Python
loop over images, so augmentation costs a few tensor ops per batch whatever the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right (NHWC: width is dim 2)."""
    mask = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(2), x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by ``padding`` (reflecting the border) and crop back to size at a random offset per image."""
    if padding <= 0:
        return x
    n, h, w, c = x.shape
    padded = F.pad(x.permute(0, 3, 1, 2).float(), (padding,) * 4, mode="reflect").to(x.dtype)
    padded = padded.permute(0, 2, 3, 1)  # back to NHWC
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).view(n, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, w)
    return padded[torch.arange(n).view(n, 1, 1), rows, cols]


class Augment:
    """The training-time transforms, configured once and applied per batch."""

    def __init__(self, img_size: int, *, flip: bool = True, crop_padding: float = 0.0):
        self.flip = flip
        self.padding = int(round(crop_padding * img_size))

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.padding:
            x = random_crop(x, self.padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        return x

    def describe(self) -> list[str]:
        out = []
        if self.padding:
            out.append(f"random crop (pad {self.padding}px)")
        if self.flip:
            out.append("horizontal flip")
        return out or ["none"]
