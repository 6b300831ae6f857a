"""Resize modes (crop, squash, letterbox) and grayscale in the one preprocessing definition, the
decode cache's keys, and the choice ``--resize auto`` / an unset ``--channels`` make from headers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from synth import encode

from imgclf.data.cache import PixelStore, store_name
from imgclf.data.header_scan import read_header, scan_headers
from imgclf.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, grey_stats
from imgclf.data.resize_choice import choose_channels, choose_resize, crop_loss, crop_report
from imgclf.data.sources import open_source


def wide_image(width: int = 120, height: int = 40) -> Image.Image:
    """Three vertical bands, red | green | blue: a crop keeps only the green one."""
    arr = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    arr[:, :third, 0] = 255
    arr[:, third : 2 * third, 1] = 255
    arr[:, 2 * third :, 2] = 255
    return Image.fromarray(arr)


def test_crop_is_the_centre_square_as_before():
    img = wide_image()
    out = Preprocess(24).fit(img)
    expected = np.asarray(ImageOps.fit(img, (24, 24), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5)))
    assert out.shape == (24, 24, 3) and np.array_equal(out, expected)
    assert out[..., 0].max() < 60 and out[..., 2].max() < 60  # the red and blue sides are gone


def test_squash_keeps_the_whole_image_stretched():
    out = Preprocess(24, resize="squash").fit(wide_image()).astype(int)
    assert out[12, 2, 0] > 200 and out[12, 12, 1] > 200 and out[12, 21, 2] > 200  # all three bands
    assert out[0, 2, 0] > 200 and out[23, 2, 0] > 200  # filling the full height


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_the_mean_colour():
    pre = Preprocess(24, resize="letterbox")
    out = pre.fit(wide_image())  # 120 x 40 -> 24 x 8, centred: rows 8..15
    fill = tuple(round(m * 255) for m in IMAGENET_MEAN)
    assert pre.fill == fill
    assert (out[:8] == fill).all() and (out[16:] == fill).all()
    band = out[8:16].astype(int)
    assert band[4, 2, 0] > 200 and band[4, 12, 1] > 200 and band[4, 21, 2] > 200
    tall = pre.fit(wide_image(40, 120))  # portrait: padded left and right instead
    assert (tall[:, :8] == fill).all() and (tall[:, 16:] == fill).all()


def test_letterbox_padding_normalises_to_zero():
    import torch

    from imgclf.inference.normalize import normalize

    pre = Preprocess(16, resize="letterbox")
    x = normalize(torch.from_numpy(pre.fit(wide_image())[None].copy()), pre.mean, pre.std)
    assert x[0, :, 0, 0].abs().max() < 0.01  # round(mean * 255) is within half a grey level of the mean


def test_a_square_image_is_the_same_in_every_mode():
    img = wide_image(30, 30)
    outs = [Preprocess(16, resize=m).fit(img) for m in ("crop", "squash", "letterbox")]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_grayscale_fits_to_one_luma_channel_from_any_input():
    pre = Preprocess(16, channels=1, mean=(0.5,), std=(0.25,))
    rgb = wide_image(48, 48)
    out = pre.fit(rgb)
    assert out.shape == (16, 16, 1)
    assert np.array_equal(out[..., 0], np.asarray(ImageOps.fit(rgb.convert("L"), (16, 16), method=Image.Resampling.BILINEAR)))
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    assert np.array_equal(pre.load(encode(grey, "PNG"))[..., 0], np.asarray(grey))  # grey files lose nothing
    assert pre.load_array(np.zeros((20, 30, 3), np.uint8)).shape == (16, 16, 1)  # an RGB array for a grey model
    assert Preprocess(16, channels=1, mean=(0.5,), std=(0.25,), resize="letterbox").fit(rgb.resize((48, 12))).shape == (16, 16, 1)


def test_grey_statistics_are_the_luma_mix_and_checked_per_channel():
    mean, std = grey_stats(IMAGENET_MEAN, IMAGENET_STD)
    assert mean == pytest.approx((0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406,))
    assert len(std) == 1 and 0.22 < std[0] < 0.23
    with pytest.raises(ValueError, match="one per channel"):
        Preprocess(16, channels=1)  # ImageNet's three means for one channel
    with pytest.raises(ValueError):
        Preprocess(16, resize="stretch")


def test_to_dict_round_trips_and_old_model_json_reads_as_crop_rgb():
    pre = Preprocess(20, mean=(0.4,), std=(0.2,), resize="letterbox", channels=1)
    assert Preprocess.from_dict(pre.to_dict()) == pre
    old = {"img_size": 32, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "interpolation": "bilinear", "resize": "center-crop"}
    assert Preprocess.from_dict(old) == Preprocess(32)
    assert Preprocess.from_dict({"img_size": 8, "channels": 1}).mean == grey_stats(IMAGENET_MEAN, IMAGENET_STD)[0]


def test_each_mode_channel_count_and_fill_has_its_own_store(tmp_path):
    names = {
        store_name(p)
        for p in (Preprocess(16), Preprocess(16, resize="squash"), Preprocess(16, resize="letterbox"),
                  Preprocess(16, resize="letterbox", mean=(0.5, 0.5, 0.5)), Preprocess(16, channels=1, mean=(0.5,), std=(0.2,)))
    }  # fmt: skip
    assert len(names) == 5
    folder = tmp_path / "d" / "a"
    folder.mkdir(parents=True)
    for i in range(3):
        wide_image(60 + i, 20).save(folder / f"{i}.png")
    (tmp_path / "d" / "b").mkdir()
    wide_image(20, 60).save(tmp_path / "d" / "b" / "x.png")
    src = open_source(tmp_path / "d")
    for pre in (Preprocess(16, resize="letterbox"), Preprocess(16, channels=1, mean=(0.5,), std=(0.2,), resize="squash")):
        store = PixelStore(pre, tmp_path / "cache")
        got = store.get(src, [s.path for s in src.samples], workers=2)
        store.close()
        assert got.pixels.shape[1:] == pre.shape
        for i, s in enumerate(src.samples):  # the cache stores exactly what prediction computes
            assert np.array_equal(got.pixels[got.rows[i]], pre.load(src.read_bytes(s.path)))


# ------------------------------------------------------------------------------ choosing from headers


def test_headers_say_grey_for_grey_modes_and_grey_palettes_only():
    def header(img: Image.Image, fmt: str = "PNG"):
        return read_header(encode(img, fmt))

    assert header(Image.new("L", (5, 4))).grey and header(Image.new("LA", (5, 4))).grey
    assert header(Image.new("I;16", (5, 4))).grey and header(Image.new("1", (5, 4))).grey
    assert not header(Image.new("RGB", (5, 4), (9, 9, 9))).grey  # equal channels are not looked at (no decode)
    grey_palette = Image.new("P", (5, 4))
    grey_palette.putpalette([v for g in range(256) for v in (g, g, g)])
    colour_palette = Image.new("P", (5, 4))
    colour_palette.putpalette([200, 10, 10] + [0] * 765)
    assert header(grey_palette).grey and not header(colour_palette).grey
    assert header(Image.new("L", (5, 4)), "JPEG").grey and not header(Image.new("RGB", (5, 4)), "JPEG").grey
    assert read_header(b"not an image") is None


def test_headers_give_the_displayed_size_of_rotated_jpegs():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    buf = io.BytesIO()
    Image.new("RGB", (40, 10)).save(buf, "JPEG", exif=exif)
    h = read_header(buf.getvalue())
    assert (h.width, h.height) == (10, 40)


def test_a_second_scan_reads_no_image_bytes(tmp_path):
    root = tmp_path / "d" / "a"
    root.mkdir(parents=True)
    for i in range(4):
        Image.new("L", (30 + i, 20)).save(root / f"{i}.png")
    src = open_source(tmp_path / "d")
    paths = [s.path for s in src.samples]
    first = scan_headers(src, paths, cache_dir=tmp_path / "cache")
    assert [(h.width, h.grey) for h in first] == [(30, True), (31, True), (32, True), (33, True)]

    def refuse(path):
        raise AssertionError("read image bytes on a warm scan")

    src.read_bytes = refuse
    assert scan_headers(src, paths, cache_dir=tmp_path / "cache") == first


def test_crop_report_and_the_auto_choices():
    assert crop_loss(192, 256) == pytest.approx(0.25) and crop_loss(100, 100) == 0
    report = crop_report([(192, 256)] * 8 + [(300, 100), (100, 250), None], worst=1)
    assert (report.images, report.over_limit, report.worst[0][0]) == (10, 2, 8)
    assert choose_resize([(192, 256)] * 100)[0] == "crop"  # TrashNet: every photo loses exactly a quarter
    assert choose_resize([(192, 256)] * 91 + [(400, 100)] * 9)[0] == "crop"
    mode, why = choose_resize([(192, 256)] * 80 + [(400, 100)] * 20)
    assert mode == "letterbox" and "20 of 100" in why
    assert choose_channels([True, True, None])[0] == 1
    assert choose_channels([True, False])[0] == 3 and choose_channels([])[0] == 3
