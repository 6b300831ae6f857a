"""The drift feed: images observed in the background, all of them when the monitor keeps up, a
bounded sample when it does not; scores wait for everything queued before them."""

from __future__ import annotations

import numpy as np
from synth import encode, shape_image

from imgclf.data.image_size import upright_size
from imgclf.data.image_stats import batch_image_stats, compute_baseline
from imgclf.serve.drift import DriftMonitor
from imgclf.serve.drift_feed import DriftFeed
from imgclf.serve.uploads import DecodedImage


def decoded_images(n: int, seed: int = 0, size: int = 40) -> list[DecodedImage]:
    out = []
    for i in range(n):
        img = shape_image(("circle", "square", "triangle")[i % 3], size, seed=seed * 10_000 + i)
        data = encode(img, "PNG")
        out.append(DecodedImage(f"{i}.png", data, np.asarray(img.resize((32, 32)))))
    return out


def baseline(n: int = 300) -> dict:
    images = decoded_images(n, seed=1)
    pixels = np.stack([d.pixels for d in images])
    return compute_baseline(batch_image_stats(pixels, [upright_size(d.data) for d in images]), np.full(n, 0.9))


def test_every_image_is_observed_with_its_original_size():
    feed = DriftFeed(DriftMonitor(baseline(), window=500), cpu_share=1.0)
    try:
        images = decoded_images(120, seed=2)
        for start in range(0, 120, 10):
            feed.submit(images[start : start + 10], [0.9] * 10)
        scores = feed.scores()
        assert scores["statistics"]["brightness"]["n"] == 120 and scores["dropped"] == 0
        assert scores["statistics"]["confidence"]["n"] == 120
        assert scores["statistics"]["width"]["psi"] == 0.0  # 40 px originals, as in the baseline (not the 32 px pixels)
        assert scores["drifted"] is False
    finally:
        feed.close()


def test_a_monitor_that_falls_behind_keeps_a_bounded_sample():
    monitor = DriftMonitor(baseline(), window=100)
    feed = DriftFeed(monitor, cpu_share=0.01)  # rests 99x as long as it works: it cannot keep up
    try:
        images = decoded_images(50, seed=3)
        for _ in range(10):
            feed.submit(images, [0.9] * 50)
        scores = feed.scores()
        observed = scores["statistics"]["brightness"]["n"]
        assert scores["dropped"] > 0
        assert observed == min(500 - scores["dropped"], 100)  # each image was observed or dropped, never lost silently
    finally:
        feed.close()
