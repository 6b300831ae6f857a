"""Property-based (Hypothesis) tests over image bytes, manifests and file names.

Every generated input either works or is refused the documented way (a DecodeError with a reason
for an image, a UserError sentence for a dataset), never another exception; decoding never
allocates a pixel buffer above its pixel limit. Bounded by example counts and input sizes, not by
wall-clock deadlines (a loaded 2-core CI machine must not fail a correct run); derandomised so
CI sees the same inputs every run.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from synth import encode, png_file, shape_image, short_png

from imgclf.data.audit import check_data, format_check
from imgclf.data.decode import DecodeError, decode_rgb
from imgclf.data.sources import open_source
from imgclf.errors import UserError

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LIMIT = 1_000_000  # the pixel limit the image tests decode under


# ------------------------------------------------------------------------------ image bytes


def _base_images() -> list[bytes]:
    """Small valid files in every format and colour mode decoding handles, to be broken."""
    rgb = shape_image("circle", 13)
    ramp16 = Image.fromarray(np.arange(13 * 9, dtype=np.uint16).reshape(9, 13) * 500)
    ints = Image.fromarray((np.arange(13 * 9, dtype=np.int32).reshape(9, 13) - 50) * 40_000_000)
    floats = Image.fromarray(np.linspace(-2, 2, 13 * 9, dtype=np.float32).reshape(9, 13))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    frames = [shape_image("square", 13, seed=i).convert("P") for i in range(2)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    return [
        encode(rgb, "PNG"), encode(rgb.convert("L"), "PNG"), encode(rgb.convert("RGBA"), "PNG"),
        encode(rgb.convert("P"), "PNG", transparency=0), encode(rgb.convert("1"), "PNG"), encode(ramp16, "PNG"),
        encode(rgb, "JPEG"), encode(rgb, "JPEG", progressive=True), encode(rgb.convert("CMYK"), "JPEG"),
        encode(rgb, "JPEG", exif=exif), gif.getvalue(), encode(rgb, "BMP"), encode(rgb, "TIFF"),
        encode(rgb, "TIFF", compression="tiff_deflate"), encode(ints, "TIFF"), encode(floats, "TIFF"),
        encode(ramp16, "TIFF"), encode(ramp16, "PPM"), encode(rgb, "WEBP", lossless=True), encode(rgb, "WEBP"),
        encode(rgb, "ICO"), encode(rgb, "TGA"),
    ]  # fmt: skip


BASES = _base_images()


@st.composite
def broken_images(draw) -> bytes:
    """A valid file with some bytes overwritten, a 32-bit field set to a large value, or cut short."""
    data = bytearray(draw(st.sampled_from(BASES)))
    for pos, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=6)):
        data[pos] = value
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(data) - 4))
        data[pos : pos + 4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, draw(st.sampled_from(["big", "little"])))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@st.composite
def hostile_pngs(draw) -> bytes:
    """PNG headers declaring any size, depth and colour type over little, short or garbage data."""
    width, height = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
    if draw(st.booleans()):
        width, height = draw(st.integers(1, 2000)), draw(st.integers(1, 2000))
    idat = draw(
        st.one_of(
            st.integers(0, 20_000).map(lambda n: zlib.compress(bytes(n))),
            st.binary(max_size=200),
        )
    )
    depth = draw(st.sampled_from([1, 2, 4, 8, 16, 3]))
    colour = draw(st.sampled_from([0, 2, 3, 4, 6, 5]))
    return png_file(width, height, idat, depth=depth, colour=colour, interlace=draw(st.sampled_from([0, 1, 2])))


IMAGE_INPUTS = st.one_of(
    st.binary(max_size=2048),
    broken_images(),
    hostile_pngs(),
    st.builds(short_png, st.integers(1, 5000), st.integers(1, 5000), st.integers(0, 30_000), st.booleans()),
)


@pytest.fixture
def allocations(monkeypatch):
    """Pixel counts of every image buffer Pillow allocates (new images and filled ones)."""
    sizes: list[int] = []
    for name in ("new", "fill"):
        real = getattr(Image.core, name)

        def spy(mode, size, *args, _real=real):
            sizes.append(int(size[0]) * int(size[1]))
            return _real(mode, size, *args)

        monkeypatch.setattr(Image.core, name, spy)
    return sizes


@settings(FUZZ, max_examples=400)
@given(data=IMAGE_INPUTS, draft=st.sampled_from([None, 4, 32]))
def test_any_bytes_decode_to_rgb_or_give_a_reason(allocations, data, draft):
    allocations.clear()
    try:
        img = decode_rgb(data, draft_size=draft, max_pixels=LIMIT)
    except DecodeError as exc:
        assert exc.reason and "\n" not in exc.reason
    else:
        assert img.mode == "RGB" and 0 < img.size[0] * img.size[1] <= LIMIT
        assert np.asarray(img).shape == (img.size[1], img.size[0], 3)
    assert max(allocations, default=0) <= LIMIT, "a pixel buffer above the limit was allocated"


@settings(FUZZ, max_examples=100)
@given(width=st.integers(1, 1000), height=st.integers(1, 1000), missing=st.integers(1, 1000), partial=st.booleans())
def test_png_missing_rows_is_always_truncated(width, height, missing, partial):
    # Non-interlaced 8-bit greyscale: each row is a filter byte plus ``width`` pixels.
    missing = min(missing, height)
    raw = (height - missing) * (width + 1) + (width // 2 if partial else 0)
    with pytest.raises(DecodeError, match="^truncated image$"):
        decode_rgb(short_png(width, height, raw), max_pixels=LIMIT)


# ------------------------------------------------------------------------------ manifests


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("manifests")
    (root / "img").mkdir()
    for name, label in (("a.png", "circle"), ("b.png", "square")):
        (root / "img" / name).write_bytes(encode(shape_image(label, 16), "PNG"))
    return root


CELL = st.one_of(
    st.sampled_from(["img/a.png", "img/b.png", "img/missing.png", "../x.png", "/etc/hostname", "cat", "dog",
                     "train", "valid", "test", "", " ", "path", "label", "split", "group"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.text(alphabet=',;"\t\r\n\x00é☃\u2028 ab/.', max_size=12),
)  # fmt: skip
HEADER = st.one_of(
    st.just(["path", "label"]),
    st.just(["path", "label", "split", "group", "site"]),
    st.lists(CELL, min_size=1, max_size=5),
)
ENCODING = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32"])


@st.composite
def csv_manifests(draw) -> bytes:
    header = draw(HEADER)
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=len(header) + 2), max_size=6))
    sep = draw(st.sampled_from([",", ",", ";", "\t"]))
    quote = draw(st.booleans())
    cell = (lambda c: '"' + c.replace('"', '""') + '"') if quote else (lambda c: c)
    text = "\n".join(sep.join(cell(c) for c in row) for row in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return text.encode(draw(ENCODING), errors="replace")


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | CELL,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def jsonl_manifests(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["row", "row", "value", "garbage"]))
        if kind == "row":
            row = {"path": draw(CELL | JSON_VALUE), "label": draw(CELL | JSON_VALUE)}
            row.update(draw(st.dictionaries(CELL, JSON_VALUE, max_size=3)))
            lines.append(json.dumps(row, ensure_ascii=draw(st.booleans())))
        elif kind == "value":
            lines.append(json.dumps(draw(JSON_VALUE)))
        else:
            lines.append(draw(st.text(max_size=30)))
    return "\n".join(lines).encode(draw(ENCODING), errors="replace")


def _opens_and_checks_or_refuses(path: Path) -> None:
    try:
        source = open_source(path)
        report = check_data(source, workers=1)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    json.dumps(report, allow_nan=False, ensure_ascii=False).encode("utf-8")
    format_check(report).encode("utf-8")


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(csv_manifests(), st.binary(max_size=300)))
def test_any_csv_manifest_works_or_gives_a_user_error(manifest_dir, data):
    (manifest_dir / "m.csv").write_bytes(data)
    _opens_and_checks_or_refuses(manifest_dir / "m.csv")


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(jsonl_manifests(), st.binary(max_size=300)))
def test_any_jsonl_manifest_works_or_gives_a_user_error(manifest_dir, data):
    (manifest_dir / "m.jsonl").write_bytes(data)
    _opens_and_checks_or_refuses(manifest_dir / "m.jsonl")


# ------------------------------------------------------------------------------ file names

NAME = st.binary(min_size=1, max_size=24).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(FUZZ, max_examples=40)
@given(classes=st.lists(NAME, min_size=1, max_size=3, unique=True), files=st.lists(NAME, min_size=1, max_size=4, unique=True))
def test_any_file_names_are_read_and_reported_as_text(tmp_path_factory, classes, files):
    root = os.fsencode(tmp_path_factory.mktemp("names"))
    png = encode(shape_image("circle", 8), "PNG")
    for c in classes:
        os.mkdir(root + b"/" + c)
        for i, f in enumerate(files):
            with open(root + b"/" + c + b"/" + f + b".png", "wb") as fh:
                fh.write(png if i % 2 == 0 else b"not an image")
    _opens_and_checks_or_refuses(Path(os.fsdecode(root)))
