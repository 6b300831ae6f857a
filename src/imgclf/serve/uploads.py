"""Uploaded bytes -> model input, through the model's one preprocessing, or a 4xx with a reason.

Decoding is imgclf's own (:meth:`imgclf.data.preprocess.Preprocess.load`, which refuses empty,
non-image, truncated, corrupt and oversized input with a reason before any large buffer exists);
this module only maps those reasons to HTTP statuses and measures the drift statistics of the
pixels the model sees. The format is decided by the bytes, never by a name or a content type a
client claims.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..data.decode import DecodeError
from ..data.image_stats import image_stats
from ..data.preprocess import Preprocess
from ..predict_inputs import printable
from .http_errors import Refused

MAX_NAME_CHARS = 200  # an upload's file name is only echoed back, shortened to this
_EXIF_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class ImageRejected(Refused):
    """An upload the service refuses: ``status`` 413, 415 or 422 and the decoder's reason."""


@dataclass(frozen=True)
class Upload:
    name: str  # as the client named it (display only: never a path on this machine)
    data: bytes


@dataclass
class DecodedImage:
    name: str
    data: bytes
    pixels: np.ndarray  # img_size x img_size x 3 uint8, exactly what the model sees
    width: int  # the original size, upright
    height: int
    stats: dict[str, float] = field(default_factory=dict)  # drift statistics (imgclf.data.image_stats)


def display_name(name: str | None, index: int) -> str:
    """A printable, bounded name for the ``index``-th upload."""
    text = printable(name or "") or f"image-{index + 1}"
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."


def status_for(reason: str) -> int:
    """413 for images over the pixel limit, 415 for bytes that are no image format, 422 for the rest."""
    if reason.startswith("image too large"):
        return 413
    if reason.startswith("not an image"):
        return 415
    return 422


def decode_upload(upload: Upload, preprocess: Preprocess, max_pixels: int) -> DecodedImage:
    """Decode and fit one upload; raises :class:`ImageRejected` with the decoder's reason."""
    try:
        pixels = preprocess.load(upload.data, max_pixels=max_pixels)
    except DecodeError as exc:
        raise ImageRejected(status_for(exc.reason), f"{upload.name}: {exc.reason}") from None
    width, height = _upright_size(upload.data, pixels)
    return DecodedImage(upload.name, upload.data, pixels, width, height, image_stats(pixels, width, height))


def _upright_size(data: bytes, pixels: np.ndarray) -> tuple[int, int]:
    """The original width and height as displayed (EXIF rotation applied), read from the header:
    the decoded pixels are already resized, and JPEG draft decoding shrinks them further."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if img.getexif().get(_EXIF_ORIENTATION) in _ROTATED:
                width, height = height, width
            return int(width), int(height)
    except Exception:  # noqa: BLE001 - decoded once already; a header quirk only costs the size statistic
        return int(pixels.shape[1]), int(pixels.shape[0])
