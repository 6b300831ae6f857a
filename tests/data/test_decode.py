"""decode_rgb turns every format and quirk into RGB, or says why it cannot; Preprocess builds on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from synth import (
    encode,
    int32_tiff,
    oversized_png_header,
    random_bytes,
    shape_image,
    short_png,
    truncated_jpeg,
)

from imgclf.data.decode import DecodeError, decode_rgb, is_image_name
from imgclf.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from imgclf.inference.normalize import normalize

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def rgb(data: bytes, **kw) -> np.ndarray:
    img = decode_rgb(data, **kw)
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def close(pixel, expected, tol: int = 8) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected)) <= tol))


# ------------------------------------------------------------------------------ broken input


def reason_of(data: bytes, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode_rgb(data, **kw)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_truncated_jpeg_says_truncated():
    assert "truncated" in reason_of(truncated_jpeg())


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "photo.jpg"  # a name that promises an image
    path.write_bytes(random_bytes())
    assert is_image_name(path.name)
    assert "not an image" in reason_of(path.read_bytes())


def test_empty_file():
    assert "empty" in reason_of(b"")


def test_corrupt_png_body_is_a_decode_error_not_a_crash():
    data = bytearray(encode(shape_image("square", 32), "PNG"))
    data[60:120] = bytes(60)  # wipe part of the compressed pixel data
    assert reason_of(bytes(data))


def test_over_pixel_limit_is_refused():
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    assert "too large" in reason_of(data, max_pixels=5000)
    assert decode_rgb(data, max_pixels=10_000).size == (100, 100)


def test_decompression_bomb_header_is_refused_without_decoding():
    # 10 gigapixels claimed by a ~60-byte file: refused from the header alone.
    reason = reason_of(oversized_png_header(100_000, 100_000))
    assert "too large" in reason and "10,000,000,000 pixels" in reason


@pytest.mark.parametrize(
    "name, expected",
    [("a.jpg", True), ("b.JPEG", True), ("c.png", True), ("d.webp", True), ("e.TIFF", True),
     ("f.gif", True), ("g.bmp", True), ("notes.txt", False), ("jpg", False), ("archive.zip", False)],
)  # fmt: skip
def test_is_image_name(name, expected):
    assert is_image_name(name) is expected


# ------------------------------------------------------------------------------ colour modes


def test_cmyk_jpeg_decodes_to_rgb_colours():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    px = rgb(data)
    assert close(px[8, 8], RED, tol=10), px[8, 8]


def test_16bit_png_is_rescaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))
    img16 = Image.fromarray(ramp)
    assert img16.mode == "I;16"
    px = rgb(encode(img16, "PNG"))
    row = px[0, :, 0]
    assert row.min() <= 1 and row.max() >= 254
    assert np.all(np.diff(row) >= 0), "the ramp must stay monotone"
    assert abs(int(row[128]) - 128) <= 2  # mid-grey, not 255 as a clipping conversion gives
    assert np.count_nonzero(row == 255) <= 2
    assert np.array_equal(px[..., 0], px[..., 2])  # grey stays grey


def test_palette_png_transparency_becomes_white():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    img.putpixel((1, 0), 1)
    px = rgb(encode(img, "PNG", transparency=0))  # palette index 0 (red) is transparent
    assert close(px[0, 0], WHITE, tol=0)
    assert close(px[0, 1], BLUE, tol=0)


def test_rgba_is_composited_on_white():
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # fully transparent red: invisible
    arr[0, 1] = (0, 0, 255, 255)  # opaque blue
    arr[1, 0] = (0, 0, 0, 128)  # half-transparent black: mid grey over white
    px = rgb(encode(Image.fromarray(arr), "PNG"))
    assert close(px[0, 0], WHITE, tol=0)
    assert close(px[0, 1], BLUE, tol=0)
    assert close(px[1, 0], (127, 127, 127), tol=2)


def test_grayscale_l():
    px = rgb(encode(Image.new("L", (3, 3), 100), "PNG"))
    assert px.shape == (3, 3, 3) and np.all(px == 100)


def test_grayscale_la_composited_on_white():
    arr = np.array([[[50, 255], [50, 0]]], dtype=np.uint8)  # opaque dark grey, transparent dark grey
    px = rgb(encode(Image.fromarray(arr, mode="LA"), "PNG"))
    assert close(px[0, 0], (50, 50, 50), tol=0)
    assert close(px[0, 1], WHITE, tol=0)


@pytest.mark.parametrize("mode, colour, transparent", [("L", 0, 0), ("RGB", (0, 0, 0), (0, 0, 0))])
def test_trns_colour_key_transparency_becomes_white(mode, colour, transparent):
    # A PNG tRNS chunk marks one grey level / colour transparent in L and RGB images too.
    img = Image.new(mode, (2, 2), colour)
    img.putpixel((1, 1), 200 if mode == "L" else (200, 200, 200))
    px = rgb(encode(img, "PNG", transparency=transparent))
    assert close(px[0, 0], WHITE, tol=0)
    assert close(px[1, 1], (200, 200, 200), tol=0)


# ------------------------------------------------------------------------------ geometry and formats


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 10, 10))  # red top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    px = rgb(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert px.shape[:2] == (40, 20)  # height, width: swapped
    assert close(px[3, 16], RED, tol=40), "stored top-left is displayed top-right"
    assert close(px[3, 3], BLUE, tol=40)
    assert close(px[36, 3], BLUE, tol=40)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c).convert("P") for c in (RED, (0, 255, 0), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert close(rgb(data)[4, 4], RED, tol=0)


@pytest.mark.parametrize("fmt, kw", [("WEBP", {"lossless": True}), ("TIFF", {}), ("BMP", {})])
def test_other_formats_decode_exactly(fmt, kw):
    img = shape_image("triangle", 24, seed=3)
    px = rgb(encode(img, fmt, **kw))
    assert np.array_equal(px, np.asarray(img))


def test_jpeg_draft_decodes_smaller_but_not_below_requested():
    data = encode(shape_image("circle", 512), "JPEG", quality=90)
    assert decode_rgb(data).size == (512, 512)
    w, h = decode_rgb(data, draft_size=32).size
    assert 32 <= min(w, h) and max(w, h) < 512


def test_draft_keeps_enough_pixels_for_non_square_images():
    data = encode(Image.new("RGB", (600, 200), RED), "JPEG")
    w, h = decode_rgb(data, draft_size=48).size
    assert min(w, h) >= 48 and w < 600


# ------------------------------------------------------------------------------ Preprocess


def test_preprocess_fit_centre_crops_then_resizes():
    img = Image.new("RGB", (60, 20), BLUE)
    img.paste(RED, (20, 0, 40, 20))  # the centred square is red, the sides blue
    out = Preprocess(img_size=10).fit(img)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    # Resampling blends the outermost columns a little; nothing of the blue sides survives.
    assert np.all(out[:, 1:-1] == np.array(RED))
    assert out[..., 2].max() < 64


def test_preprocess_load_matches_decode_then_fit():
    pp = Preprocess(img_size=32)
    data = encode(shape_image("cross", 128, seed=5), "JPEG", quality=92)
    out = pp.load(data)
    assert out.shape == (32, 32, 3)
    assert np.array_equal(out, pp.fit(decode_rgb(data, draft_size=32)))
    with pytest.raises(DecodeError):
        pp.load(truncated_jpeg())


def test_preprocess_dict_round_trip_and_validation():
    pp = Preprocess(img_size=64, interpolation="bicubic")
    assert Preprocess.from_dict(pp.to_dict()) == pp
    assert Preprocess.from_dict({"img_size": 16}) == Preprocess(16)
    with pytest.raises(ValueError):
        Preprocess(32, interpolation="nearest-ish")
    with pytest.raises(ValueError):
        Preprocess(32, resize="stretch")


def test_normalize_scales_and_transposes():
    batch = torch.zeros((2, 4, 5, 3), dtype=torch.uint8)
    batch[1] = 255
    x = normalize(batch, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    for c in range(3):
        assert torch.allclose(x[0, c], torch.tensor(-IMAGENET_MEAN[c] / IMAGENET_STD[c]), atol=1e-5)
        assert torch.allclose(x[1, c], torch.tensor((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]), atol=1e-5)
    assert normalize(batch, IMAGENET_MEAN, IMAGENET_STD, dtype=torch.bfloat16).dtype == torch.bfloat16


# ------------------------------------------------------------------------------ hostile input


@pytest.fixture
def allocations(monkeypatch):
    """The (width, height) of every image buffer Pillow allocates while the test runs."""
    seen: list[tuple[int, int]] = []
    real_new = Image.core.new

    def spy(mode, size, *args):
        seen.append(tuple(size))
        return real_new(mode, size, *args)

    monkeypatch.setattr(Image.core, "new", spy)
    return seen


def test_png_whose_data_ends_early_is_truncated_and_never_allocated(allocations):
    data = short_png(7900, 7900, raw_bytes=3 * 7901)  # ~100 bytes: three of 7,900 rows
    assert len(data) < 120
    assert reason_of(data) == "truncated image"
    assert all(w * h < 1_000_000 for w, h in allocations), allocations  # not 62 MB of zeros


@pytest.mark.parametrize("interlace, raw_bytes", [(False, 10 * 65), (True, 70)])
def test_png_short_by_whole_rows_is_truncated(interlace, raw_bytes):
    # 64x64 greyscale needs 64 * 65 raw bytes; 8x8 interlaced needs 79 (Adam7 passes). Both streams
    # end on a row boundary, which Pillow's decoder accepts as the end of the image.
    width = 8 if interlace else 64
    assert reason_of(short_png(width, width, raw_bytes, interlace)) == "truncated image"
    full = 79 if interlace else 64 * 65
    assert decode_rgb(short_png(width, width, full, interlace)).size == (width, width)


def test_complete_png_with_a_black_last_row_still_decodes():
    arr = np.full((20, 30, 3), 200, dtype=np.uint8)
    arr[-1] = 0  # what a short stream leaves behind, but here it is real data
    assert np.array_equal(rgb(encode(Image.fromarray(arr), "PNG")), arr)


def test_truncated_image_is_an_error_even_when_pillow_is_told_to_load_it(monkeypatch):
    # Code elsewhere in a process (a notebook, another library) may switch this global on; decoding
    # must still report the truncation instead of training on a grey-filled image.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(UserWarning, match="LOAD_TRUNCATED_IMAGES"):
        assert reason_of(truncated_jpeg()) == "truncated image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_declared_size_is_checked_before_any_pixel_buffer(allocations):
    data = encode(Image.new("L", (1200, 1000)), "PNG")
    assert "too large" in reason_of(data, max_pixels=1_000_000)
    assert allocations == []


def grey(data: bytes) -> np.ndarray:
    px = rgb(data)
    assert np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 0], px[..., 2])
    return px[..., 0]


def test_unsigned_32bit_tiff_uses_its_real_range():
    ramp = np.linspace(0, 4_000_000_000, 256).astype(np.uint32).reshape(16, 16)
    out = grey(int32_tiff(ramp, unsigned=True)).ravel()
    assert out[0] == 0 and out[-1] == 255
    assert np.all(np.diff(out) >= 0), "values above 2**31 must not wrap to black"
    assert np.count_nonzero(out == 255) <= 2  # today 94% of such a ramp comes out white
    assert abs(int(out[128]) - 128) <= 2


def test_signed_32bit_tiff_maps_min_to_black_and_max_to_white():
    ramp = np.linspace(-50_000, 70_000, 256).round().reshape(16, 16)
    out = grey(int32_tiff(ramp, unsigned=False)).ravel()
    assert (out[0], out[-1]) == (0, 255) and np.all(np.diff(out) >= 0)
    assert abs(int(out[128]) - 128) <= 2  # negatives are not clipped to black


def test_16bit_data_in_a_32bit_container_keeps_the_16bit_scale():
    # A 16-bit PGM opens as Pillow mode "I": its values are absolute 16-bit intensities (a dark
    # image stays dark), exactly like the same data in a 16-bit PNG.
    ramp = np.linspace(0, 3000, 256).round().astype(np.uint16).reshape(16, 16)
    pgm = encode(Image.fromarray(ramp), "PPM")
    assert Image.open(io.BytesIO(pgm)).mode == "I"
    assert np.array_equal(grey(pgm), grey(encode(Image.fromarray(ramp), "PNG")))
    assert grey(pgm).max() == round(3000 / 65535 * 255)


def test_float_tiff_with_nan_and_infinity_scales_its_finite_range():
    values = np.linspace(-1.0, 3.0, 256, dtype=np.float32).reshape(16, 16)
    values[0, :3] = [np.nan, np.inf, -np.inf]
    out = grey(encode(Image.fromarray(values), "TIFF"))
    finite = out.ravel()[3:]
    assert finite[0] <= 1 and finite[-1] == 255 and np.all(np.diff(finite.astype(int)) >= 0)
    assert out[0, :3].tolist() == [0, 255, 0]  # NaN as the minimum, +inf white, -inf black
