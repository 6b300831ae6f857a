"""Images the tests make for themselves: learnable synthetic classes and deliberately broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# Each class is a distinct coloured shape on a noisy background: learnable in a few epochs by a
# small CNN, yet not trivially constant images.
CLASS_STYLES = {
    "circle": (220, 40, 40),
    "square": (40, 200, 60),
    "triangle": (50, 80, 230),
    "cross": (230, 200, 40),
}


def shape_image(label: str, size: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
    color = np.array(CLASS_STYLES[label], dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = rng.integers(size // 3, 2 * size // 3, size=2)
    r = int(rng.integers(size // 6, size // 3))
    if label == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif label == "square":
        mask = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
    elif label == "triangle":
        mask = (yy - cy <= r) & (yy - cy >= -r) & (abs(xx - cx) <= (yy - cy + r) / 2)
    else:
        mask = (abs(xx - cx) <= r // 3) & (abs(yy - cy) <= r) | (abs(yy - cy) <= r // 3) & (abs(xx - cx) <= r)
    arr[mask] = color
    return Image.fromarray(arr, mode="RGB")


def make_folder(
    root: Path,
    classes=("circle", "square", "triangle"),
    per_class: int = 20,
    size: int = 32,
    splits: tuple[str, ...] | None = None,
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """root/<class>/*.png, or root/<split>/<class>/*.png when ``splits`` is given."""
    n = 0
    for split in splits or (None,):
        for label in classes:
            d = root / split / label if split else root / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                shape_image(label, size, seed=seed * 100_000 + n).save(d / f"{label}_{i:03d}.{fmt}")
                n += 1
    return root


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    shape_image("circle", 64).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data[: len(data) // 2]


def random_bytes(n: int = 2048, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but holds no pixel data: Pillow opens it
    (reads the size) without allocating anything, so "too large" can be tested cheaply."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def oversized_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression-bomb shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A stored (uncompressed) zip archive holding ``members`` (name -> bytes)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_file(width: int, height: int, idat: bytes, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    """A PNG with the given header fields (valid or not) and one IDAT chunk holding ``idat``."""
    import struct

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def short_png(width: int, height: int, raw_bytes: int, interlace: bool = False) -> bytes:
    """An 8-bit greyscale PNG declaring ``width x height`` whose complete, valid zlib stream holds
    only ``raw_bytes`` bytes of (filter byte + pixel) rows: the data ends before the declared pixels.
    Pillow stops at the stream's end and, unchecked, returns the rest of the image as zeros."""
    import zlib

    return png_file(width, height, zlib.compress(bytes(raw_bytes), 9), interlace=int(interlace))


def int32_tiff(values: np.ndarray, unsigned: bool) -> bytes:
    """A 32-bit integer greyscale TIFF (SampleFormat 1 = unsigned, 2 = signed) holding ``values``."""
    import struct

    bits = values.astype(np.uint32 if unsigned else np.int32).view(np.int32)
    data = bytearray(encode(Image.fromarray(bits), "TIFF"))  # Pillow writes mode "I" as signed
    if unsigned:
        ifd = struct.unpack("<I", data[4:8])[0]
        for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
            entry = ifd + 2 + 12 * k
            if struct.unpack("<H", data[entry : entry + 2])[0] == 339:  # SampleFormat
                data[entry + 8 : entry + 10] = struct.pack("<H", 1)
    return bytes(data)
