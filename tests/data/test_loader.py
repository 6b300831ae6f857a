"""The batch loader: order guarantees that evaluation relies on."""

from __future__ import annotations

import numpy as np

from imgclf.data.dataset import Split
from imgclf.data.loader import BatchLoader


def _scrambled_split(n: int = 50) -> Split:
    # The pixel store's rows are in decoding order, which need not be the split's sample order
    # (images decoded by earlier runs, in parallel): here each image's row is a permutation.
    rng = np.random.default_rng(0)
    rows = rng.permutation(n)
    pixels = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    pixels[rows, 0, 0, 0] = np.arange(n)  # sample i's first pixel holds i
    return Split(pixels=pixels, rows=rows, labels=np.arange(n) % 7, samples=[None] * n)


def test_unshuffled_batches_follow_the_split_order():
    split = _scrambled_split()
    got = np.concatenate([x[:, 0, 0, 0].numpy() for x, _ in BatchLoader(split, 16)])
    labels = np.concatenate([y.numpy() for _, y in BatchLoader(split, 16)])
    assert got.tolist() == list(range(len(split)))  # pixels in sample order...
    assert labels.tolist() == split.labels.tolist()  # ...so they line up with split.labels


def test_shuffled_batches_keep_pixels_and_labels_together():
    split = _scrambled_split()
    seen = []
    for x, y in BatchLoader(split, 16, shuffle=True, seed=3):
        ids = x[:, 0, 0, 0].numpy()
        assert (split.labels[ids] == y.numpy()).all()
        seen += ids.tolist()
    assert sorted(seen) == list(range(len(split)))
