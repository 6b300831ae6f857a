"""Decode encoded image bytes into RGB pixels, and say why when that is impossible.

Every image imgclf reads (training, evaluation, prediction, serving) goes through
:func:`decode_rgb`, so a format quirk handled here is handled everywhere.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .png_rows import png_data_is_short

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


def _to_rgb(img: Image.Image, rawmode: str | None = None) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB. ``rawmode`` is how the file stored the pixels (the
    decoder's raw mode, read before loading), which says the true range of a mode "I" image."""
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        # A PNG tRNS chunk (one colour marked transparent) is alpha too, in any of these modes.
        img = img.convert("RGBA")
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # Pillow's convert("RGB") clips 16-bit values at 255 instead of rescaling them.
        return _grey_to_rgb(np.asarray(img), 0, 65535)
    if img.mode == "I":
        return _grey_to_rgb(*_int_range(np.asarray(img), rawmode))
    if img.mode == "F":
        return _grey_to_rgb(*_float_range(np.asarray(img)))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels carry arbitrary colours: composite on white so they look as a viewer shows them.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


_INT_RAWMODE = re.compile(r"I;(\d+)[BLN]?(S?)")


def _int_range(arr: np.ndarray, rawmode: str | None) -> tuple[np.ndarray, float, float]:
    """The values and the range that maps to black..white for a mode "I" (int32) image.

    Unsigned data of at most 16 bits (a 16-bit PGM, which Pillow opens as "I") keeps its type's
    range, as the same data in a 16-bit PNG does: those formats store absolute intensities, and a
    dark photo must stay dark. Everything wider or signed (32-bit TIFFs: counts, depths,
    temperatures) has no such convention, so its own min..max is stretched to 0..255, as image
    viewers such as ImageJ show it.
    """
    match = _INT_RAWMODE.fullmatch(rawmode or "")
    bits, signed = (int(match.group(1)), bool(match.group(2))) if match else (32, True)
    if bits <= 16 and not signed:
        return arr, 0, 2**bits - 1
    if bits == 32 and not signed:
        arr = arr.view(np.uint32)  # Pillow stores unsigned 32-bit samples in int32: undo the wrap
    return arr, float(arr.min()), float(arr.max())


def _float_range(arr: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Float data has no fixed range: stretch its finite min..max; NaN and -inf become black, +inf white."""
    finite = np.isfinite(arr)
    if finite.all():
        return arr, float(arr.min()), float(arr.max())
    lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
    return np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo), lo, hi


def _grey_to_rgb(arr: np.ndarray, lo: float, hi: float) -> Image.Image:
    """Map ``lo..hi`` linearly onto 0..255 (rounded); a constant image becomes black."""
    # float32 is exact enough (24-bit mantissa against 8-bit output) and halves float64's memory.
    out = arr.astype(np.float32)
    out -= np.float32(lo)
    out *= np.float32(255.0 / (hi - lo) if hi > lo else 0.0)
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return Image.fromarray(out.astype(np.uint8)).convert("RGB")


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
    _refuse_truncated_images()
    try:
        with warnings.catch_warnings():
            # Bomb warnings (our limit decides below) and plugins' notes on damaged headers ("Tag
            # data larger than file"): whether the image is usable is decided below, with a reason.
            warnings.simplefilter("ignore")
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
    if img.format == "PNG" and png_data_is_short(data, bound_only=True):
        return _fail("truncated image")  # refused before a buffer of the declared size exists
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated GIF/WebP/TIFF: the first frame
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": orientation is best effort
            rawmode = _rawmode(img)  # loading clears the tiles that name it
            img.load()
            if img.format == "PNG" and _maybe_short_png(img) and png_data_is_short(data):
                return _fail("truncated image")  # Pillow returned the missing rows as zeros
            img = ImageOps.exif_transpose(img)
        return _to_rgb(img, rawmode)
    except DecodeError:
        raise
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg.lower():
            return _fail("truncated image")
        return _fail(f"corrupt image ({msg})")
    except Exception as exc:  # noqa: BLE001
        return _fail(f"corrupt image ({exc})")


def _maybe_short_png(img: Image.Image) -> bool:
    """Could this decoded PNG hide missing rows? Rows arrive top to bottom, so a short stream
    leaves the last row all zeros; interlaced passes leave gaps anywhere."""
    width, height = img.size
    return bool(img.info.get("interlace")) or not np.asarray(img.crop((0, height - 1, width, height))).any()


def _rawmode(img: Image.Image) -> str | None:
    """The raw mode of the first tile (a plain string, or the first of the decoder's arguments)."""
    args = img.tile[0].args if img.tile else None
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else None


def _refuse_truncated_images() -> None:
    """Keep Pillow's truncation errors on: with ``LOAD_TRUNCATED_IMAGES`` (a switch often copied into
    notebooks and scripts) a cut-off file decodes as a grey-filled image and would be trained on."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        warnings.warn(
            "imgclf switched off PIL.ImageFile.LOAD_TRUNCATED_IMAGES: truncated images are reported "
            "and skipped, never filled in",
            stacklevel=3,
        )


def _fail(reason: str):
    raise DecodeError(reason)
