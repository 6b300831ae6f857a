"""Drift monitoring: darkened traffic is flagged on brightness; traffic like the baseline is not.

False-positive rate of the "no drift" tests: a statistic is flagged only when its KS p-value is
below 0.001 AND its PSI exceeds 0.2 (see imgclf.serve.drift). Under no drift the KS condition
alone holds with probability at most 0.001 per statistic (less for discrete ones such as width,
where the test is conservative), so at most 11 x 0.001 = 1.1% per check over 11 statistics
(union bound); and with 500 values against 1,000, the PSI condition is far out too: PSI is then
about (chi-squared with 9 df) x (1/500 + 1/1000), mean 0.027, and exceeding 0.2 needs a
chi-squared of about 133 (p < 1e-20). So with any seed these tests would fail by chance with
probability well under 1%; with the fixed seeds here they are deterministic.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import ImageFilter
from synth import CLASS_STYLES, shape_image

from imgclf.data.image_stats import CONFIDENCE, batch_image_stats, compute_baseline
from imgclf.errors import UserError
from imgclf.serve.drift import DriftMonitor, population_stability_index

IMAGE_STATISTICS = 10


def varied_images(n: int, seed: int, exposure: float = 1.0):
    """``n`` seeded images (uint8 RGB) varied in size, exposure and blur, and their (width, height).

    ``exposure`` scales every pixel after the per-image variation: 0.4 darkens the whole stream."""
    rng = np.random.default_rng(seed)
    labels = sorted(CLASS_STYLES)
    images, sizes = [], []
    for i in range(n):
        size = int(rng.integers(28, 45))
        img = shape_image(labels[i % len(labels)], size, seed=int(rng.integers(1 << 30)))
        if rng.random() < 0.5:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
        pixels = np.asarray(img, dtype=np.float32) * rng.uniform(0.7, 1.3)
        images.append(np.clip(pixels * exposure, 0, 255).astype(np.uint8))
        sizes.append((size, size))
    return images, sizes


def confidences(n: int, seed: int, a: float = 8.0, b: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).beta(a, b, n)


@pytest.fixture(scope="module")
def baseline() -> dict:
    images, sizes = varied_images(1000, seed=1)
    # Through JSON, as the run directory stores it.
    return json.loads(json.dumps(compute_baseline(batch_image_stats(images, sizes), confidences(1000, 1))))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_traffic_like_the_baseline_is_not_flagged(baseline, seed):
    monitor = DriftMonitor(baseline, window=500)
    images, sizes = varied_images(500, seed=seed)
    monitor.observe_images(images, sizes, confidences(500, seed))
    scores = monitor.scores()
    assert not scores["drifted"] and scores["drifted_statistics"] == []
    assert len(scores["statistics"]) == IMAGE_STATISTICS + 1
    for name, entry in scores["statistics"].items():
        assert entry["n"] == 500 and entry["psi"] < 0.1, name
        assert 0 <= entry["ks_pvalue"] <= 1 and 0 <= entry["ks_statistic"] <= 1


def test_darkened_images_are_flagged_on_brightness(baseline):
    monitor = DriftMonitor(baseline, window=500)
    images, sizes = varied_images(500, seed=5, exposure=0.4)
    monitor.observe_images(images, sizes, confidences(500, 5))
    scores = monitor.scores()
    brightness = scores["statistics"]["brightness"]
    assert scores["drifted"] and brightness["drifted"]
    assert brightness["psi"] > 1.0 and brightness["ks_pvalue"] < 1e-10
    # Only what darkening changes: sizes and the confidence stream are as before.
    for name in ("width", "height", "aspect_ratio", CONFIDENCE):
        assert not scores["statistics"][name]["drifted"], name


def test_a_small_darkened_window_is_already_flagged_at_the_minimum(baseline):
    monitor = DriftMonitor(baseline, window=500, min_window=50)
    images, sizes = varied_images(49, seed=6, exposure=0.4)
    monitor.observe_images(images, sizes)
    early = monitor.scores()
    assert not early["drifted"] and early["statistics"]["brightness"]["psi"] is None
    monitor.observe_images(*varied_images(1, seed=7, exposure=0.4))
    assert monitor.scores()["statistics"]["brightness"]["drifted"]


def test_falling_confidence_is_flagged(baseline):
    monitor = DriftMonitor(baseline, window=300)
    monitor.observe(confidences=confidences(300, 8, a=2.0, b=2.0))  # mean 0.5 instead of 0.8
    scores = monitor.scores()
    assert scores["drifted_statistics"] == [CONFIDENCE]
    assert scores["statistics"]["brightness"]["n"] == 0


def test_the_window_rolls_so_drift_clears_when_traffic_recovers(baseline):
    monitor = DriftMonitor(baseline, window=200)
    monitor.observe_images(*varied_images(200, seed=9, exposure=0.4))
    assert monitor.scores()["statistics"]["brightness"]["drifted"]
    monitor.observe_images(*varied_images(200, seed=10))
    scores = monitor.scores()
    assert scores["statistics"]["brightness"]["n"] == 200 and not scores["statistics"]["brightness"]["drifted"]


def test_single_observations_and_unknown_names(baseline):
    monitor = DriftMonitor(baseline, window=10, min_window=5)
    for i in range(12):
        monitor.observe({"brightness": 40.0 + i, "not_in_baseline": 1.0, "contrast": float("nan")}, 0.9)
    scores = monitor.scores()
    assert scores["statistics"]["brightness"]["n"] == 10  # the window keeps the latest 10
    assert scores["statistics"]["contrast"]["n"] == 0  # non-finite values are dropped
    assert "not_in_baseline" not in scores["statistics"]
    monitor.reset()
    assert monitor.scores()["statistics"]["brightness"]["n"] == 0


def test_threads_observing_at_once_lose_nothing(baseline):
    monitor = DriftMonitor(baseline, window=10_000)

    def feed(t: int) -> None:
        for i in range(200):
            monitor.observe({"brightness": [float(t), float(i)]}, [0.5])
            if i % 50 == 0:
                monitor.scores()

    threads = [threading.Thread(target=feed, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scores = monitor.scores()
    assert scores["statistics"]["brightness"]["n"] == 1600 and scores["statistics"][CONFIDENCE]["n"] == 800


def test_psi_is_zero_for_equal_distributions_and_grows_with_the_shift():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0
    small = population_stability_index([0.5, 0.5], [0.45, 0.55])
    large = population_stability_index([0.5, 0.5], [0.1, 0.9])
    assert 0 < small < 0.05 < 0.2 < large
    assert np.isfinite(population_stability_index([1.0, 0.0], [0.0, 1.0]))  # empty bins are floored


@pytest.mark.parametrize(
    "bad, message",
    [
        ({}, "not one imgclf wrote"),
        ({"format": "imgclf-drift-baseline", "version": 99, "statistics": {}}, "newer than"),
        ({"format": "imgclf-drift-baseline", "version": 1, "statistics": {}}, "holds no statistics"),
        ({"format": "imgclf-drift-baseline", "version": 1, "statistics": {"brightness": {"sample": [1]}}}, "lacks"),
    ],
)
def test_a_bad_baseline_is_refused_with_a_reason(bad, message):
    with pytest.raises(UserError, match=message):
        DriftMonitor(bad)
