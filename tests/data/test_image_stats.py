"""Per-image input statistics and the drift baseline built from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import ImageFilter
from synth import shape_image

from imgclf.data.image_stats import (
    CONFIDENCE,
    STATISTICS,
    batch_image_stats,
    bin_edges,
    bin_fractions,
    compute_baseline,
    image_stats,
)


def test_a_flat_grey_image_has_its_level_and_nothing_else():
    s = image_stats(np.full((20, 30, 3), 100, np.uint8))
    assert s["brightness"] == pytest.approx(100) and s["contrast"] == pytest.approx(0, abs=1e-4)
    assert s["colourfulness"] == pytest.approx(0, abs=1e-4) and s["sharpness"] == pytest.approx(0, abs=1e-4)
    assert (s["mean_r"], s["mean_g"], s["mean_b"]) == pytest.approx((100, 100, 100))
    assert (s["width"], s["height"], s["aspect_ratio"]) == (30, 20, 1.5)
    assert set(s) == set(STATISTICS)


def test_half_black_half_white_has_mid_brightness_and_full_contrast():
    pixels = np.zeros((10, 10, 3), np.uint8)
    pixels[:, 5:] = 255
    s = image_stats(pixels)
    assert s["brightness"] == pytest.approx(127.5, abs=0.01) and s["contrast"] == pytest.approx(127.5, abs=0.01)


def test_colour_statistics_follow_the_channels():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    s = image_stats(red)
    assert (s["mean_r"], s["mean_g"], s["mean_b"]) == pytest.approx((255, 0, 0))
    assert s["brightness"] == pytest.approx(0.299 * 255, abs=0.01)  # BT.601 luma, as Pillow's "L"
    # Hasler-Suesstrunk for a flat colour: 0.3 * sqrt(mean(rg)^2 + mean(yb)^2) = 0.3 * sqrt(255^2 + 127.5^2)
    assert s["colourfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-4)
    muted = image_stats((red // 4 + 96).astype(np.uint8))
    assert muted["colourfulness"] < s["colourfulness"] / 3


def test_luma_matches_pillow():
    img = shape_image("triangle", 40, seed=3)
    pillow_luma = np.asarray(img.convert("L"), dtype=np.float64).mean()
    assert image_stats(np.asarray(img))["brightness"] == pytest.approx(pillow_luma, abs=0.6)  # Pillow rounds each pixel


def test_grayscale_layouts_agree_with_grey_rgb():
    grey = np.asarray(shape_image("circle", 32, seed=1).convert("L"))
    as_rgb = image_stats(np.repeat(grey[..., None], 3, axis=2))
    for layout in (grey, grey[..., None]):
        s = image_stats(layout)
        for name in STATISTICS:
            assert s[name] == pytest.approx(as_rgb[name], rel=1e-5, abs=1e-3), name


def test_blur_lowers_sharpness():
    img = shape_image("cross", 48, seed=2)
    sharp = image_stats(np.asarray(img))["sharpness"]
    blurred = image_stats(np.asarray(img.filter(ImageFilter.GaussianBlur(2))))["sharpness"]
    assert blurred < sharp / 5


def test_original_size_is_used_when_given():
    s = image_stats(np.zeros((32, 32, 3), np.uint8), width=640, height=480)
    assert (s["width"], s["height"], s["aspect_ratio"]) == (640, 480, pytest.approx(4 / 3))


def test_a_batch_equals_its_images_one_by_one():
    images = [np.asarray(shape_image(label, 32, seed=i)) for i, label in enumerate(["circle", "square"] * 50)]
    sizes = [(100 + i, 50 + i) for i in range(100)]
    batched = batch_image_stats(np.stack(images), sizes)  # 100 > one vectorised chunk
    listed = batch_image_stats(images, sizes)
    for name in STATISTICS:
        assert batched[name].shape == (100,)
        np.testing.assert_allclose(batched[name], listed[name], rtol=1e-5, atol=1e-3)
    single = image_stats(images[7], *sizes[7])
    assert {n: batched[n][7] for n in STATISTICS} == pytest.approx(single, rel=1e-5)


def test_images_of_different_sizes_can_be_mixed():
    images = [np.zeros((10, 20, 3), np.uint8), np.full((30, 15), 200, np.uint8)]
    stats = batch_image_stats(images)
    assert list(stats["width"]) == [20, 15] and list(stats["brightness"]) == pytest.approx([0, 200])


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros(5, np.uint8)])
def test_unusable_pixel_arrays_are_refused(bad):
    with pytest.raises(ValueError):
        image_stats(bad)


def test_baseline_is_json_with_capped_samples_and_quantile_bins():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(300, 12, 12, 3), dtype=np.uint8)
    stats = batch_image_stats(images)
    baseline = compute_baseline(stats, rng.uniform(0.3, 1.0, 300), sample_size=100)
    assert json.loads(json.dumps(baseline)) == baseline
    assert set(baseline["statistics"]) == set(STATISTICS) | {CONFIDENCE}
    brightness = baseline["statistics"]["brightness"]
    assert brightness["n"] == 300 and len(brightness["sample"]) == 100
    assert set(brightness["sample"]) <= set(stats["brightness"].tolist())
    assert len(brightness["bin_edges"]) == 9 and brightness["bin_edges"] == sorted(brightness["bin_edges"])
    assert sum(brightness["bin_fractions"]) == pytest.approx(1.0)
    assert max(brightness["bin_fractions"]) < 0.15  # deciles: about a tenth each
    width = baseline["statistics"]["width"]  # constant: one edge, everything in the bin at or below it
    assert width["bin_edges"] == [12.0] and width["bin_fractions"] == [1.0, 0.0]


def test_baseline_from_rows_equals_baseline_from_columns():
    stats = batch_image_stats([np.asarray(shape_image("circle", 16, seed=i)) for i in range(40)])
    rows = [{name: float(stats[name][i]) for name in STATISTICS} for i in range(40)]
    assert compute_baseline(rows) == compute_baseline(stats)


def test_bins_put_values_on_an_edge_in_the_lower_bin():
    edges = bin_edges(np.arange(1, 101, dtype=float), bins=4)
    assert list(edges) == pytest.approx([25.75, 50.5, 75.25])
    assert list(bin_fractions([25.75, 25.76, 1000, -5], edges)) == [0.5, 0.25, 0.0, 0.25]


def test_a_baseline_needs_values():
    with pytest.raises(ValueError, match="no finite values"):
        compute_baseline({"brightness": [np.nan, np.inf]})

