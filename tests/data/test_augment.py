"""Batched augmentation: every option takes effect, does what it says, is reproducible, keeps shape
and dtype, and stays vectorised (as many tensor ops for 1024 images as for 512)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synth import shape_image
from torchvision.transforms.v2 import functional as TF

from imgclf.data import augment_colour as colour
from imgclf.data import augment_geometry as geometry
from imgclf.data import augment_policies as policies
from imgclf.data.augment import Augment

N, SIZE = 64, 32
ALL_ON = dict(
    crop_padding=0.125, alternating_flip=True, random_resized_crop=(0.35, 1.0), rotation=15.0, perspective=0.3,
    color_jitter=(0.4, 0.4, 0.4), noise=8.0, erasing=0.5, trivial_augment=True, rand_augment=(2, 9),
)  # fmt: skip

# One configuration per option, everything else off (flip included).
OPTIONS = {
    "crop_padding": dict(crop_padding=0.125),
    "translate": dict(translate=4),
    "flip": dict(flip=True),
    "alternating_flip": dict(alternating_flip=True),
    "random_resized_crop": dict(random_resized_crop=(0.35, 1.0)),
    "rotation": dict(rotation=20.0),
    "perspective": dict(perspective=0.4),
    "color_jitter": dict(color_jitter=(0.4, 0.4, 0.4)),
    "noise": dict(noise=8.0),
    "erasing": dict(erasing=1.0),
    "trivial_augment": dict(trivial_augment=True),
    "rand_augment": dict(rand_augment=(2, 9)),
}


def batch(n: int = N, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Shapes on noisy backgrounds: structured, not constant, nor already at full contrast."""
    labels = ("circle", "square", "triangle", "cross")
    return torch.from_numpy(np.stack([np.asarray(shape_image(labels[i % 4], size, seed=seed + i)) for i in range(n)]))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(x: torch.Tensor, seed: int = 0, epoch: int = 1, img_size: int = SIZE, **options) -> torch.Tensor:
    options.setdefault("flip", False)
    return Augment(img_size, **options)(x, gen(seed), indices=torch.arange(x.shape[0]), epoch=epoch)


def changed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: did any pixel change?"""
    return (x != y).flatten(1).any(1)


# ------------------------------------------------------------------------------ every option


@pytest.mark.parametrize("name", OPTIONS)
def test_option_changes_most_images_keeps_shape_dtype_and_is_deterministic(name):
    x = batch()
    y = run(x, **OPTIONS[name])
    assert y.shape == x.shape and y.dtype == torch.uint8
    expected = {"flip": 0.3, "alternating_flip": 0.3}.get(name, 0.85)  # flips leave about half unchanged
    assert changed(x, y).float().mean() >= expected, name
    assert torch.equal(y, run(x, **OPTIONS[name])), "same seed, same output"
    assert not torch.equal(y, run(x, seed=1, epoch=2, **OPTIONS[name])), "another seed, other output"


def test_everything_off_is_identity_and_describes_none():
    x = batch()
    aug = Augment(SIZE, flip=False)
    assert torch.equal(aug(x, gen()), x)
    assert aug.describe() == ["none"]


def test_describe_lists_every_enabled_transform():
    text = " | ".join(Augment(SIZE, **ALL_ON).describe()).lower()
    for word in ("resized crop", "rotation", "perspective", "crop (pad 4px)", "alternating", "trivialaugment",
                 "randaugment", "jitter", "noise", "erasing"):  # fmt: skip
        assert word in text, word
    assert Augment(SIZE, flip=True).describe() == ["horizontal flip"]


def test_all_options_together_keep_shape_dtype_and_determinism():
    x = batch()
    y = run(x, **ALL_ON)
    assert y.shape == x.shape and y.dtype == torch.uint8 and y.is_contiguous()
    assert torch.equal(y, run(x, **ALL_ON))


def test_bad_options_are_refused():
    for bad in (dict(random_resized_crop=(0.0, 1.0)), dict(perspective=1.5), dict(erasing=2.0),
                dict(rand_augment=(2, 31)), dict(color_jitter=(-0.1, 0, 0)), dict(rotation=-1.0)):  # fmt: skip
        with pytest.raises(ValueError):
            Augment(SIZE, **bad)
    with pytest.raises(ValueError, match="indices"):
        Augment(SIZE, alternating_flip=True)(batch(4), gen())
    with pytest.raises(ValueError, match="uint8"):
        Augment(SIZE)(batch(4).float(), gen())


# ------------------------------------------------------------------------------ flips and translation


def test_flip_mirrors_exactly_about_half():
    x = batch(256)
    y = geometry.random_flip(x, gen())
    flipped = (y == x.flip(2)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert torch.all(flipped | kept)
    assert 0.35 < flipped.float().mean() < 0.65


def test_old_call_signature_and_crop_padding_results_are_unchanged():
    """Augment(img_size, flip=, crop_padding=)(x, gen) draws as before: reflect pad, crop, flip."""
    x = batch()
    got = Augment(SIZE, flip=True, crop_padding=0.125)(x, gen(3))
    g = gen(3)
    p = 4
    padded = F.pad(x.permute(0, 3, 1, 2).float(), (p,) * 4, mode="reflect").to(torch.uint8).permute(0, 2, 3, 1)
    dy = torch.randint(0, 2 * p + 1, (N,), generator=g)
    dx = torch.randint(0, 2 * p + 1, (N,), generator=g)
    want = torch.stack([padded[i, dy[i] : dy[i] + SIZE, dx[i] : dx[i] + SIZE] for i in range(N)])
    mask = torch.rand(N, generator=g) < 0.5
    want = torch.where(mask.view(-1, 1, 1, 1), want.flip(2), want)
    assert torch.equal(got, want)


def test_translate_is_crop_padding_in_pixels_and_takes_precedence():
    x = batch()
    assert torch.equal(run(x, translate=4), run(x, crop_padding=0.125))
    assert torch.equal(run(x, translate=2, crop_padding=0.125), run(x, translate=2))
    assert Augment(SIZE, translate=2, crop_padding=0.125, flip=False).describe() == ["random crop (pad 2px)"]


def test_alternating_flip_flips_the_complement_set_in_consecutive_epochs():
    x = batch(200)
    idx = torch.arange(1000, 1200)
    was_flipped = []
    for epoch in range(4):
        y = geometry.alternating_flip(x, idx, epoch, seed=7)
        flipped = (y == x.flip(2)).flatten(1).all(1)
        assert torch.all(flipped | (y == x).flatten(1).all(1))
        was_flipped.append(flipped)
    assert torch.equal(was_flipped[1], ~was_flipped[0])
    assert torch.equal(was_flipped[2], was_flipped[0]) and torch.equal(was_flipped[3], was_flipped[1])
    assert 0.35 < was_flipped[0].float().mean() < 0.65
    # The decision belongs to the dataset index, not the position in the batch ...
    perm = torch.randperm(200, generator=gen())
    assert torch.equal(geometry.alternating_flip(x[perm], idx[perm], 0, seed=7), geometry.alternating_flip(x, idx, 0, seed=7)[perm])
    # ... and the seed changes the pattern.
    other = (geometry.alternating_flip(x, idx, 0, seed=8) == x.flip(2)).flatten(1).all(1)
    assert not torch.equal(other, was_flipped[0])


def test_alternating_flip_replaces_random_flip_in_augment():
    x = batch()
    idx = torch.arange(N)
    aug = Augment(SIZE, flip=True, alternating_flip=True, seed=3)
    assert torch.equal(aug(x, gen(), idx, 5), geometry.alternating_flip(x, idx, 5, seed=3))
    assert torch.equal(aug(x, gen(9), idx, 5), aug(x, gen(1), idx, 5)), "the generator plays no part"


# ------------------------------------------------------------------------------ geometry


def quadrants(n: int, size: int = SIZE) -> torch.Tensor:
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=torch.uint8)
    img = torch.empty(size, size, 3, dtype=torch.uint8)
    h = size // 2
    img[:h, :h], img[:h, h:], img[h:, :h], img[h:, h:] = colours
    return img.expand(n, size, size, 3).contiguous()


def test_random_resized_crop_moves_the_quadrant_boundaries():
    x = quadrants(128)
    y = geometry.random_resized_crop(x, (0.35, 1.0), gen())
    # Any 35%-area box contains the centre, so the corners keep their colours ...
    assert torch.equal(y[:, 0, 0], x[:, 0, 0]) and torch.equal(y[:, -1, -1], x[:, -1, -1])
    # ... while the boundary between the red and green quadrants moves.
    red = (y[:, 0, :, 0] > 127) & (y[:, 0, :, 1] < 128)  # top row, (N, W)
    boundary = red.int().argmin(1)  # first non-red column
    assert (boundary != SIZE // 2).float().mean() > 0.8
    assert boundary.unique().numel() > 5


def test_resized_crop_box_is_resampled_like_torchvision():
    """The crop box map reproduces torchvision's resized_crop (bilinear) for the same box. Only the
    outer ring differs: torchvision clamps at the box edge, we keep sampling the true continuous
    box, which reaches a fraction of a pixel beyond it."""
    x = batch(8)
    theta = torch.zeros(8, 3, 3, dtype=torch.float64)
    top, left, ch, cw = 5, 3, 20, 24
    theta[:, 0, 0], theta[:, 0, 2] = cw / SIZE, (2 * left + cw) / SIZE - 1
    theta[:, 1, 1], theta[:, 1, 2], theta[:, 2, 2] = ch / SIZE, (2 * top + ch) / SIZE - 1, 1
    ours = geometry._warp(x, theta, mode="bilinear", padding_mode="reflection")
    ref = TF.resized_crop(x.permute(0, 3, 1, 2), top, left, ch, cw, [SIZE, SIZE], antialias=False)
    assert (ours.int() - ref.permute(0, 2, 3, 1).int())[:, 1:-1, 1:-1].abs().max() <= 1


@pytest.mark.parametrize("option", [dict(rotation=30.0), dict(perspective=0.5)])
def test_rotation_and_perspective_move_content_and_fill_by_reflection(option):
    x = quadrants(64)
    y = run(x, **option)
    assert changed(x, y).float().mean() > 0.9
    # Reflection fill: no black corners appear (zero fill would put 0,0,0 there).
    assert not (y.flatten(1, 2) == 0).all(-1).any()


def test_policy_translate_and_rotate_are_exact_pixel_moves_with_black_fill():
    x = batch(4)
    ops = torch.tensor([policies.POLICY_OPS.index("translate_x")] * 2 + [policies.POLICY_OPS.index("rotate")] * 2)
    # TrivialAugmentWide: translate level 1 = 32px, rotate level 1 = 135 deg; pick 3px and 90 deg.
    level = torch.tensor([3 / 32, 3 / 32, 90 / 135, 90 / 135], dtype=torch.float64)
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64)
    y = policies._apply_policy_ops(x, ops, level, sign, policies.TRIVIAL_WIDE)
    right, left = torch.zeros_like(x[0]), torch.zeros_like(x[0])
    right[:, 3:], left[:, :-3] = x[0, :, :-3], x[1, :, 3:]
    assert torch.equal(y[0], right) and torch.equal(y[1], left)
    for i in (2, 3):
        assert torch.equal(y[i], torch.rot90(x[i], 1, (0, 1))) or torch.equal(y[i], torch.rot90(x[i], -1, (0, 1)))


# ------------------------------------------------------------------------------ colour, noise, erasing


def mean_intensity(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean(dim=(1, 2, 3))


def test_brightness_moves_mean_intensity_both_ways():
    x = batch(128)
    y = colour.random_color_jitter(x, (0.5, 0.0, 0.0), gen())
    delta = mean_intensity(y) - mean_intensity(x)
    assert (delta > 1).sum() > 30 and (delta < -1).sum() > 30


def test_contrast_and_saturation_change_spread_both_ways():
    x = batch(128)
    y = colour.random_color_jitter(x, (0.0, 0.5, 0.0), gen())
    d = y.float().std(dim=(1, 2, 3)) - x.float().std(dim=(1, 2, 3))
    assert (d > 0.5).sum() > 30 and (d < -0.5).sum() > 30
    y = colour.random_color_jitter(x, (0.0, 0.0, 0.5), gen())
    spread = lambda t: t.float().std(dim=3).mean(dim=(1, 2))  # noqa: E731 - colourfulness per image
    d = spread(y) - spread(x)
    assert (d > 0.5).sum() > 30 and (d < -0.5).sum() > 30


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (colour._brightness, TF.adjust_brightness),
        (colour._contrast, TF.adjust_contrast),
        (colour._saturation, TF.adjust_saturation),
        (colour._sharpness, TF.adjust_sharpness),
    ],
)
def test_per_sample_factors_match_torchvision_within_rounding(ours, theirs):
    x = batch(6)
    factors = torch.tensor([0.0, 0.3, 0.8, 1.0, 1.4, 1.99])
    y = geometry._to_uint8(ours(x.float(), factors))
    for i, f in enumerate(factors.tolist()):
        ref = theirs(x[i].permute(2, 0, 1), f).permute(1, 2, 0)
        # torchvision truncates to uint8 where we round, and floors the grayscale: at most 2 apart.
        assert (y[i].int() - ref.int()).abs().max() <= 2, (ours.__name__, f)


def test_posterize_solarize_autocontrast_equalize():
    x = batch(4)
    bits = torch.tensor([8, 6, 4, 2])
    y = colour._posterize(x, bits)
    for i, b in enumerate(bits.tolist()):
        assert torch.equal(y[i], TF.posterize(x[i].permute(2, 0, 1), b).permute(1, 2, 0))
    thr = torch.tensor([255.0, 200.0, 128.0, 0.0])
    y = colour._solarize(x, thr)
    for i, t in enumerate(thr.tolist()):
        assert torch.equal(y[i], TF.solarize(x[i].permute(2, 0, 1), t).permute(1, 2, 0))
    y = colour._autocontrast(x)  # torchvision's, batched; its float division can stop at 254
    assert torch.all(y.amin(dim=(1, 2)) == 0) and torch.all(y.amax(dim=(1, 2)) >= 254)
    assert colour._equalize(x).shape == x.shape and changed(x, colour._equalize(x)).all()


def test_trivial_augment_applies_each_op_kind_across_a_batch():
    x = batch(256)
    y = policies.trivial_augment(x, gen())
    assert changed(x, y).float().mean() > 0.8  # identity, zero magnitude and no-op draws stay put
    assert torch.equal(y, policies.trivial_augment(x, gen()))


def test_rand_augment_magnitude_zero_is_milder_than_high_magnitude():
    x = batch(128)
    diff = lambda y: (y.float() - x.float()).abs().mean()  # noqa: E731
    assert diff(policies.rand_augment(x, 2, 0, gen())) < diff(policies.rand_augment(x, 2, 20, gen()))


def test_noise_std_roughly_matches_and_clamps_without_wrapping():
    grey = torch.full((64, SIZE, SIZE, 3), 128, dtype=torch.uint8)
    y = colour.random_noise(grey, 10.0, gen())
    assert abs((y.float() - 128).std().item() - 10.0) < 0.5
    assert abs((y.float() - 128).mean().item()) < 0.3
    white = torch.full((8, SIZE, SIZE, 3), 250, dtype=torch.uint8)
    assert colour.random_noise(white, 30.0, gen()).float().mean() > 200  # clamped at 255, never wrapped to 0


def test_erasing_replaces_one_rectangle_per_image():
    x = torch.full((128, SIZE, SIZE, 3), 128, dtype=torch.uint8)
    y = colour.random_erasing(x, 1.0, gen())
    diff = (y != x).any(-1)  # (N, H, W)
    areas = []
    for i in range(diff.shape[0]):  # checking, not augmenting: a loop over images is fine here
        rows = diff[i].any(1).nonzero().squeeze(1)
        cols = diff[i].any(0).nonzero().squeeze(1)
        assert rows.numel() and cols.numel(), "p=1 erases every image"
        box = diff[i, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        # Noise fill: all three channels equal to 128 by chance is a 1-in-16M event per pixel.
        assert box.float().mean() > 0.99 and box.sum() == diff[i].sum(), "one solid rectangle"
        areas.append(box.numel() / SIZE**2)
    assert 0.015 <= min(areas) and max(areas) <= 0.36
    half = colour.random_erasing(x, 0.5, gen())
    assert 0.35 < changed(x, half).float().mean() < 0.65


# ------------------------------------------------------------------------------ speed and devices


def test_everything_on_is_vectorised_not_per_image():
    """A fixed number of tensor operations per batch whatever its size: no Python loop over
    images. Counted, not timed (a timing would fail on a busy machine): 512 and 1024 images with
    every option on dispatch exactly as many PyTorch ops (both batches draw all 14 policy ops)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return func(*args, **(kwargs or {}))

    aug = Augment(SIZE, **ALL_ON)
    counts = []
    for n in (512, 1024):
        x, idx = batch(n), torch.arange(n)
        with OpCounter() as counter:
            y = aug(x, gen(), idx, 1)
        counts.append(counter.ops)
        assert y.shape == x.shape
    assert counts[0] == counts[1] and counts[0] < 2000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = batch(256)
    idx = torch.arange(256)
    options = {k: v for k, v in ALL_ON.items() if k not in ("noise", "erasing")}  # per-pixel draws differ by device
    cpu = Augment(SIZE, **options)(x, gen(), idx, 1)
    gpu = Augment(SIZE, **options)(x.cuda(), gen(), idx, 1)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8
    # Float rounding may tip a bilinear value by one, or a nearest-neighbour pick to a neighbour.
    assert ((gpu.cpu().int() - cpu.int()).abs() <= 1).float().mean() > 0.99
    full = Augment(SIZE, **ALL_ON)
    a, b = full(x.cuda(), gen(), idx, 1), full(x.cuda(), gen(), idx, 1)
    assert torch.equal(a, b), "deterministic on the device too"
