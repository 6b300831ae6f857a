"""Uploaded bytes -> model input, through the model's one preprocessing, or a 4xx with a reason.

Decoding is imgclf's own (:meth:`imgclf.data.preprocess.Preprocess.load`, which refuses empty,
non-image, truncated, corrupt and oversized input with a reason before any large buffer exists);
this module only maps those reasons to HTTP statuses. The format is decided by the bytes, never
by a name or a content type a client claims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.decode import DecodeError
from ..data.preprocess import Preprocess
from ..predict_inputs import printable
from .http_errors import Refused

MAX_NAME_CHARS = 200  # an upload's file name is only echoed back, shortened to this


class ImageRejected(Refused):
    """An upload the service refuses: ``status`` 413, 415 or 422 and the decoder's reason."""


@dataclass(frozen=True)
class Upload:
    name: str  # as the client named it (display only: never a path on this machine)
    data: bytes


@dataclass(frozen=True)
class DecodedImage:
    name: str
    data: bytes
    pixels: np.ndarray  # img_size x img_size x channels uint8, exactly what the model sees


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
    return DecodedImage(upload.name, upload.data, pixels)
