"""The corruptions of `imgclf robustness`: shape, determinism, strength growing with severity, and
each one checked for doing what its name says against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from synth import shape_image

from imgclf.errors import UserError
from imgclf.evaluate.corruptions import CORRUPTIONS, PARAMS, corrupt

RANDOM = ("gaussian_noise", "motion_blur", "crop_zoom", "rotation", "occlusion")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    labels = ["circle", "square", "triangle", "cross"] * 4
    return np.stack([np.asarray(shape_image(lab, 32, seed=i)) for i, lab in enumerate(labels)])


def test_the_issue_lists_ten_corruptions():
    assert set(CORRUPTIONS) == {
        "low_light", "contrast", "gaussian_noise", "defocus_blur", "motion_blur",
        "jpeg", "grayscale", "crop_zoom", "rotation", "occlusion",
    }  # fmt: skip


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_determinism_and_growing_strength(images, name):
    before = images.copy()
    change = []
    for severity in (1, 2, 3):
        out = corrupt(images, name, severity, seed=5)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out, corrupt(images, name, severity, seed=5)), "same seed, same result"
        change.append(np.abs(out.astype(float) - images).mean())
    assert change[0] > 0.5, f"{name} at severity 1 barely changes the images"
    assert change[0] < change[1] < change[2], f"{name}: {change} does not grow with severity"
    assert np.array_equal(images, before), "the input is left untouched"


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_depend_on_the_seed(images, name):
    assert not np.array_equal(corrupt(images, name, 2, seed=0), corrupt(images, name, 2, seed=1))


def test_grayscale_matches_pillow_luminance(images):
    out = corrupt(images, "grayscale", 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    pillow = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images]).astype(int)
    assert np.abs(out[..., 0].astype(int) - pillow).max() <= 1


def test_low_light_darkens_and_contrast_shrinks_the_spread(images):
    for sev, (factor, _) in zip((1, 2, 3), PARAMS["low_light"]):
        dark = corrupt(images, "low_light", sev)
        assert dark.mean() < factor * images.mean() + 1
    f = images.astype(float)
    for sev, keep in zip((1, 2, 3), PARAMS["contrast"]):
        low = corrupt(images, "contrast", sev).astype(float)
        ratio = low.std(axis=(1, 2, 3)) / f.std(axis=(1, 2, 3))
        assert ratio == pytest.approx(np.full(len(f), keep), abs=0.02)
        assert low.mean(axis=(1, 2, 3)) == pytest.approx(f.mean(axis=(1, 2, 3)), abs=0.6)


def test_gaussian_noise_has_the_stated_standard_deviation():
    grey = np.full((8, 32, 32, 3), 128, dtype=np.uint8)  # far from 0 and 255: no clipping
    for sev, std in zip((1, 2, 3), PARAMS["gaussian_noise"]):
        noise = corrupt(grey, "gaussian_noise", sev).astype(float) - 128
        assert noise.mean() == pytest.approx(0, abs=0.5)
        assert noise.std() == pytest.approx(std, rel=0.05)


@pytest.mark.parametrize("name", ["defocus_blur", "motion_blur"])
def test_blurs_keep_flat_images_and_spread_a_dot(name):
    flat = np.full((2, 32, 32, 3), 77, dtype=np.uint8)
    assert np.array_equal(corrupt(flat, name, 3), flat), "the kernel sums to one"
    dot = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    dot[0, 32, 32] = 255
    spread = [int((corrupt(dot, name, s)[0, ..., 0] > 0).sum()) for s in (1, 2, 3)]
    assert 1 < spread[0] < spread[1] < spread[2]
    assert corrupt(dot, name, 1)[0, ..., 0].astype(float).sum() == pytest.approx(255, rel=0.05)


def test_crop_zoom_keeps_the_stated_fraction_of_the_image():
    ramp = np.tile(np.linspace(0, 255, 64), (4, 64, 1))[..., None].repeat(3, -1).round().astype(np.uint8)
    for sev, area in zip((1, 2, 3), PARAMS["crop_zoom"]):
        out = corrupt(ramp, "crop_zoom", sev).astype(float)[..., 0]
        span = out.max(axis=2) - out.min(axis=2)  # the horizontal ramp's range within each row
        assert span.mean() == pytest.approx(255 * np.sqrt(area), rel=0.05)


def test_rotation_turns_a_bar_by_the_stated_angle():
    bar = np.zeros((6, 64, 64, 3), dtype=np.uint8)
    bar[:, 30:34, 8:56] = 255
    for sev, degrees in zip((1, 2, 3), PARAMS["rotation"]):
        out = corrupt(bar, "rotation", sev)[..., 0]
        for im in out:
            ys, xs = np.nonzero(im > 127)
            cov = np.cov(np.stack([xs, ys]))
            vx, vy = np.linalg.eigh(cov)[1][:, -1]  # the bar's long axis
            angle = abs(np.degrees(np.arctan2(vy, vx)))
            angle = min(angle, 180 - angle)
            assert angle == pytest.approx(degrees, abs=2.0)


def test_occlusion_covers_the_stated_area():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (20, 48, 48, 3), dtype=np.uint8)
    for sev, area in zip((1, 2, 3), PARAMS["occlusion"]):
        changed = np.any(corrupt(noise, "occlusion", sev) != noise, axis=-1).mean(axis=(1, 2))
        assert changed.mean() == pytest.approx(area, rel=0.15)


def test_bad_arguments_are_refused(images):
    with pytest.raises(UserError, match="unknown corruption"):
        corrupt(images, "fog", 1)
    with pytest.raises(UserError, match="severity"):
        corrupt(images, "jpeg", 4)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.astype(np.float32), "jpeg", 1)
    assert corrupt(images[:0], "rotation", 2).shape == (0, 32, 32, 3)
