"""Decode encoded image bytes into RGB pixels, and say why when that is impossible.

Every image imgclf reads (training, evaluation, prediction, serving) goes through
:func:`decode_rgb`, so a format quirk handled here is handled everywhere.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps

# imgclf refuses images above this many pixels (decompression bombs) with a reason, before
# decoding. Pillow's own process-wide guard (~179 MP) stays in force above it.
DEFAULT_MAX_PIXELS = 64_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)


class DecodeError(Exception):
    """An image that cannot be used; ``reason`` is a short phrase for reports."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB."""
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        # A PNG tRNS chunk (one colour marked transparent) is alpha too, in any of these modes.
        img = img.convert("RGBA")
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert("RGB") clips 16-bit values at 255 instead of rescaling them.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels carry arbitrary colours: composite on white so they look as a viewer shows them.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_rgb(
    data: bytes,
    *,
    draft_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``data`` to an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding downscale by a power of two while staying at least that
    many pixels on the shorter side (much faster for large photos stored at a small size).
    Raises :class:`DecodeError` with a reason for empty, non-image, truncated, corrupt or
    oversized input.
    """
    if not data:
        return _fail("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides below
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        return _fail(f"image too large ({size} > Pillow's limit {Image.MAX_IMAGE_PIXELS * 2:,}; possible decompression bomb)")
    except Image.UnidentifiedImageError:
        return _fail("not an image (unrecognised format)")
    except Exception as exc:  # noqa: BLE001 - any parser failure is a corrupt file
        return _fail(f"corrupt image ({exc})")
    width, height = img.size
    if width * height > max_pixels:
        return _fail(
            f"image too large ({width}x{height} = {width * height:,} pixels > limit {max_pixels:,}; "
            "possible decompression bomb)"
        )
    if width == 0 or height == 0:
        return _fail("image has zero size")
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP/TIFF: the first frame
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": orientation is best effort
            img.load()
            img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            return _fail("truncated image")
        return _fail(f"corrupt image ({msg})")
    except Exception as exc:  # noqa: BLE001
        return _fail(f"corrupt image ({exc})")


def _fail(reason: str):
    raise DecodeError(reason)
