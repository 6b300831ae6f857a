"""The one preprocessing definition shared by training, evaluation, prediction and export.

An image becomes model input in two steps:

1. :meth:`Preprocess.fit` (decoded PIL image -> ``size x size`` uint8 RGB): crop the centre to a
   square and resize it. This is what the decoded-image cache stores, so training, evaluation
   and prediction see the very same pixels.
2. :func:`imgclf.inference.normalize.normalize` (uint8 NHWC batch -> float NCHW batch): scale to
   [0, 1], subtract the mean, divide by the standard deviation.

The parameters live in ``model/model.json``; anything that predicts reads them from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageOps

from .decode import DEFAULT_MAX_PIXELS, DecodeError, _to_rgb, decode_rgb

# ImageNet statistics: the convention of timm's and torchvision's pretrained weights, so a model
# trained here can start from them (and one trained from scratch loses nothing by using them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocess:
    img_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    resize: str = "center-crop"  # crop the centred square, then resize it to img_size

    def __post_init__(self):
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.resize != "center-crop":
            raise ValueError(f"unknown resize mode {self.resize!r}")

    def fit(self, img: Image.Image) -> np.ndarray:
        """Centre-crop to a square and resize to ``img_size``; returns HWC uint8."""
        size = (self.img_size, self.img_size)
        if img.size != size:
            img = ImageOps.fit(img, size, method=_RESAMPLE[self.interpolation], centering=(0.5, 0.5))
        return np.asarray(img, dtype=np.uint8)

    def load(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Encoded bytes -> HWC uint8, the full first step. Raises DecodeError."""
        return self.fit(decode_rgb(data, draft_size=self.img_size, max_pixels=max_pixels))

    def load_image(self, img: Image.Image) -> np.ndarray:
        """An already decoded PIL image (any mode) -> HWC uint8, as :meth:`load` fits decoded bytes."""
        try:
            img.load()
            return self.fit(_to_rgb(img))
        except (OSError, ValueError) as exc:  # a lazily opened file that turns out damaged
            raise DecodeError(f"unusable image ({exc})") from None

    def load_array(self, arr: np.ndarray) -> np.ndarray:
        """uint8 pixels (HW grayscale, or HWC with 1, 3 or 4 channels) -> HWC uint8 fitted; raises DecodeError."""
        if arr.dtype != np.uint8:
            raise DecodeError(f"pixels must be uint8 (0-255), not {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or 0 in arr.shape:
            raise DecodeError(f"pixels must be HW (grayscale) or HWC with 1, 3 or 4 channels, not shape {arr.shape}")
        return self.load_image(Image.fromarray(np.ascontiguousarray(arr)))  # L, RGB or RGBA by shape

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        return cls(
            img_size=int(d["img_size"]),
            mean=tuple(d.get("mean", IMAGENET_MEAN)),
            std=tuple(d.get("std", IMAGENET_STD)),
            interpolation=d.get("interpolation", "bilinear"),
            resize=d.get("resize", "center-crop"),
        )

