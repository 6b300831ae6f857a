"""The one preprocessing definition shared by training, evaluation, prediction and export.

An image becomes model input in two steps:

1. :meth:`Preprocess.fit` (decoded PIL image -> ``size x size x channels`` uint8): make it square
   by the resize mode and resize it, in RGB or (``channels=1``) grayscale. This is what the
   decoded-image cache stores, so training, evaluation and prediction see the very same pixels.
2. :func:`imgclf.inference.normalize.normalize` (uint8 NHWC batch -> float NCHW batch): scale to
   [0, 1], subtract the mean, divide by the standard deviation (one value per channel).

Resize modes (``resize``), for images that are not square:

- ``crop``: crop the centred square, then resize it (loses the borders of the longer side);
- ``squash``: resize the whole image to a square (keeps everything, distorts the aspect ratio);
- ``letterbox``: resize the whole image to fit inside the square, keeping its aspect ratio, and
  pad the rest with the mean colour (``round(mean * 255)``): after normalisation the padding is
  zero, the value a convolution's own zero padding already shows the network beyond the border.

The parameters live in ``model/model.json``; anything that predicts reads them from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageOps

from .decode import DEFAULT_MAX_PIXELS, DecodeError, _to_rgb, decode_rgb
from .near_duplicates import MIN_SIDE
from .preprocess_options import CHANNEL_COUNTS, LEGACY_RESIZE_NAMES, RESIZE_MODES

# ImageNet statistics: the convention of timm's and torchvision's pretrained weights, so a model
# trained here can start from them (and one trained from scratch loses nothing by using them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights: what Pillow's convert("L") computes, so grey pixels are this mix of RGB.
LUMA = (0.299, 0.587, 0.114)

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def grey_stats(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[tuple[float], tuple[float]]:
    """RGB normalisation statistics as one grey channel's: the luma mix of the means (exact, since
    luma is linear) and of the standard deviations (exact when the channels move together, as in
    photos, whose channels correlate strongly; an upper bound otherwise)."""
    if len(mean) == 1:
        return (float(mean[0]),), (float(std[0]),)
    return (sum(w * m for w, m in zip(LUMA, mean)),), (sum(w * s for w, s in zip(LUMA, std)),)


@dataclass(frozen=True)
class Preprocess:
    img_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    resize: str = "crop"  # one of RESIZE_MODES
    channels: int = 3  # 3: RGB, 1: grayscale (luma)

    def __post_init__(self):
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize!r} (expected one of {', '.join(RESIZE_MODES)})")
        if self.channels not in CHANNEL_COUNTS:
            raise ValueError(f"channels must be 1 or 3, not {self.channels!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} value(s), one per channel")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one fitted image: (img_size, img_size, channels)."""
        return (self.img_size, self.img_size, self.channels)

    @property
    def fill(self) -> tuple[int, ...]:
        """The letterbox padding: the mean colour, which normalises to zero."""
        return tuple(int(round(m * 255)) for m in self.mean)

    def fit(self, img: Image.Image) -> np.ndarray:
        """Make an RGB image square by :attr:`resize` at ``img_size``; returns HWC uint8 with
        :attr:`channels` channels."""
        if self.channels == 1:
            img = img.convert("L")  # before resizing, so letterbox pads with the grey mean itself
        size = (self.img_size, self.img_size)
        method = _RESAMPLE[self.interpolation]
        if img.size != size:
            if self.resize == "crop":
                img = ImageOps.fit(img, size, method=method, centering=(0.5, 0.5))
            elif self.resize == "squash":
                img = img.resize(size, method)
            else:
                img = _letterbox(img, self.img_size, method, self.fill)
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    @property
    def draft_size(self) -> int:
        """The smallest size a JPEG may be decoded at (a power-of-two reduction): never under
        MIN_SIDE (32), so the decode pass also yields what the near-duplicate hashes need."""
        return max(self.img_size, MIN_SIDE)

    def load(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Encoded bytes -> HWC uint8, the full first step. Raises DecodeError."""
        return self.fit(decode_rgb(data, draft_size=self.draft_size, max_pixels=max_pixels))

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
        """Read :meth:`to_dict`'s output, or what earlier versions wrote (no channels: RGB;
        ``center-crop``: crop)."""
        channels = int(d.get("channels", 3))
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else grey_stats(IMAGENET_MEAN, IMAGENET_STD)
        resize = d.get("resize", "crop")
        return cls(
            img_size=int(d["img_size"]),
            mean=tuple(d.get("mean", default_mean)),
            std=tuple(d.get("std", default_std)),
            interpolation=d.get("interpolation", "bilinear"),
            resize=LEGACY_RESIZE_NAMES.get(resize, resize),
            channels=channels,
        )


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Fitted pixels (..., H, W, 1 or 3) as RGB (..., H, W, 3): a grayscale model's input repeated
    over three channels, for showing it (galleries, Grad-CAM overlays) or for code made for RGB."""
    pixels = np.asarray(pixels)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def _letterbox(img: Image.Image, size: int, method, fill: tuple[int, ...]) -> Image.Image:
    """``img`` scaled to fit a ``size`` square (its longer side becomes ``size``), centred on the
    ``fill`` colour."""
    w, h = img.size
    scale = size / max(w, h)
    inner = (max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale))))
    canvas = Image.new(img.mode, (size, size), fill[0] if img.mode == "L" else fill)
    canvas.paste(img.resize(inner, method), ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas
