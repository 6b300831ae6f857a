"""Perceptual hashes (imagehash's definitions, vectorised), the pair search and the groups."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image
from synth import shape_image

from imgclf.data.leakage import find_duplicate_groups, group_labels, leaking_groups
from imgclf.data.near_duplicates import (
    DHASH_MAX,
    MIN_SIDE,
    PHASH_MAX,
    clusters,
    hash_thumbnails,
    near_duplicate_pairs,
    popcount,
    thumbnail,
)


def photo(seed: int, size: int = 96) -> Image.Image:
    """A smooth random 'photo': low-frequency colour blobs, so small edits keep its structure."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def hashes(images) -> tuple[np.ndarray, np.ndarray]:
    return hash_thumbnails(np.stack([thumbnail(im) for im in images]))


def test_phash_is_imagehash_phash_of_the_thumbnail_bit_for_bit():
    rng = np.random.default_rng(0)
    thumbs = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(20)]
    thumbs += [np.asarray(photo(s).resize((32, 32), Image.Resampling.BOX).convert("L")) for s in range(20)]
    thumbs.append(np.full((32, 32), 7, np.uint8))  # constant: no bit above the median
    phash, _ = hash_thumbnails(np.stack(thumbs))
    for t, h in zip(thumbs, phash):
        assert int(h) == int(str(imagehash.phash(Image.fromarray(t))), 16)


def test_dhash_bits_say_which_neighbour_is_brighter_and_stay_close_to_imagehash():
    ramp = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))  # brighter to the right everywhere
    _, d = hash_thumbnails(np.stack([ramp, ramp[:, ::-1]]))
    assert int(d[0]) == 2**64 - 1 and int(d[1]) == 0
    thumbs = np.stack([thumbnail(photo(s)) for s in range(30)])
    _, dhash = hash_thumbnails(thumbs)
    theirs = np.array([int(str(imagehash.dhash(Image.fromarray(t))), 16) for t in thumbs], dtype=np.uint64)
    # Area averaging instead of Pillow's rounded Lanczos resize: the same hash up to a few bits.
    assert popcount(dhash ^ theirs).mean() <= 4


def test_an_edited_copy_is_a_near_duplicate_and_other_images_are_not():
    original = photo(1)
    buf = io.BytesIO()
    original.save(buf, "JPEG", quality=60)
    recompressed = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    brighter = Image.fromarray(np.clip(np.asarray(original, np.int16) + 12, 0, 255).astype(np.uint8))
    smaller = original.resize((64, 64), Image.Resampling.LANCZOS)
    others = [photo(s) for s in range(2, 12)]
    phash, dhash = hashes([original, recompressed, brighter, smaller, *others])
    pairs = {tuple(p) for p in near_duplicate_pairs(phash, dhash).tolist()}
    assert {(0, 1), (0, 2), (0, 3)} <= pairs
    assert not any(i >= 4 or j >= 4 for i, j in pairs), pairs  # the other photos match nothing


def test_synthetic_shapes_on_noise_are_not_near_duplicates():
    """The tests' own images (a shape on noise): pHash alone pairs some of them (72 of 1,200 at
    32 px, measured); dHash as well must not, or training on them would be refused."""
    images = [shape_image(label, 32, seed=n) for n, label in enumerate(["circle", "square", "triangle", "cross"] * 100)]
    phash, dhash = hashes(images)
    assert len(near_duplicate_pairs(phash, dhash)) == 0


def test_images_under_the_minimum_side_get_no_thumbnail():
    assert thumbnail(Image.new("L", (MIN_SIDE - 1, 200))) is None
    assert thumbnail(Image.new("RGB", (MIN_SIDE, MIN_SIDE))).shape == (32, 32)


def brute_force(phash, dhash):
    p = popcount(phash[:, None] ^ phash[None, :])
    d = popcount(dhash[:, None] ^ dhash[None, :])
    close = np.triu((p <= PHASH_MAX) & (d <= DHASH_MAX), 1)
    return clusters(len(phash), np.argwhere(close))


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs_a = {(i, j) for i in range(len(a)) for j in range(i + 1, len(a)) if a[i] == a[j]}
    pairs_b = {(i, j) for i in range(len(b)) for j in range(i + 1, len(b)) if b[i] == b[j]}
    return pairs_a == pairs_b


@pytest.mark.parametrize("seed", range(5))
def test_pair_search_groups_exactly_as_comparing_every_pair(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 40, dtype=np.uint64)
    phash, dhash = [base], [base[::-1].copy()]
    for _ in range(4):  # copies with a few bits flipped in each hash, and exact repeats
        flips_p = np.uint64(1) << rng.integers(0, 64, (40, 3)).astype(np.uint64)
        flips_d = np.uint64(1) << rng.integers(0, 64, (40, 5)).astype(np.uint64)
        phash.append(base ^ np.bitwise_or.reduce(flips_p * (rng.random((40, 3)) < 0.6), axis=1))
        dhash.append(base[::-1] ^ np.bitwise_or.reduce(flips_d * (rng.random((40, 5)) < 0.6), axis=1))
    phash, dhash = np.concatenate(phash), np.concatenate(dhash)
    found = clusters(len(phash), near_duplicate_pairs(phash, dhash))
    assert same_partition(found, brute_force(phash, dhash))
    assert len(set(found.tolist())) < len(phash)  # the test made some near-duplicates


def test_groups_join_exact_copies_and_near_duplicates_and_find_the_split_crossings():
    a, b, c = (int(v) for v in np.random.default_rng(1).integers(0, 2**63, 3, dtype=np.uint64))  # ~32 bits apart
    phash = np.array([a, a, b, b ^ 3, c, c ^ 2**63], dtype=np.uint64)
    dhash = np.array([c, c, a, a ^ 1, b, b ^ 2**62], dtype=np.uint64)
    hashed = np.array([True, True, True, True, False, True])
    keys = ["a", "b", "c", "d", "e", "e"]  # 4 and 5 share content (the same file twice); 4 has no hash
    groups = find_duplicate_groups(keys, phash, dhash, hashed)
    members = sorted(sorted(m) for m in groups.members().values())
    assert members == [[0, 1], [2, 3], [4, 5]]
    assert [groups.exact[int(groups.cluster[m[0]])] for m in members] == [False, False, True]
    split_of = ["train", "test", "train", "train", "val", "train"]
    assert leaking_groups(groups, split_of) == [[0, 1], [5, 4]]  # train first
    labels = group_labels(groups, ["x", None, None, None, None, "x"])  # a group column joins 0 and 5
    assert labels[0] == labels[1] == labels[4] == labels[5] and labels[2] == labels[3] != labels[0]
