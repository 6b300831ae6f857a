"""An image's original size, upright, from its header alone (no pixels decoded).

The drift statistics ``width``, ``height`` and ``aspect_ratio`` describe images as they arrive,
before :class:`~.preprocess.Preprocess` resizes them; training (the baseline) and serving (live
traffic) must measure them the same way, so both call :func:`upright_size`. "Upright" applies
the EXIF orientation, as decoding does (:func:`~.decode.decode_rgb` transposes by it).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

_EXIF_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image is displayed, read from the header; None when the header is
    unreadable (the caller then knows nothing better than the decoded pixels' size)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression-bomb or corrupt-EXIF warning changes nothing here
            with Image.open(io.BytesIO(data)) as img:  # lazy: parses the header only
                width, height = img.size
                if img.getexif().get(_EXIF_ORIENTATION) in _ROTATED:
                    width, height = height, width
                return int(width), int(height)
    except Exception:  # noqa: BLE001 - any unreadable header: the size is best effort
        return None
