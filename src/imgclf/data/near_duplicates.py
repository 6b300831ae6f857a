"""Near-duplicate images: perceptual hashes, the pairs within a threshold, and their clusters.

Two 64-bit perceptual hashes of each image's 32 x 32 grey thumbnail (the whole image, box
filtered), as the ``imagehash`` package defines them:

- pHash: the top-left 8 x 8 of the thumbnail's 2-D DCT-II, each bit "above the median";
- dHash: the thumbnail resized (Lanczos) to 9 x 8, each bit "brighter than its left neighbour".

Bit for bit ``imagehash.phash(thumb)`` and ``imagehash.dhash(thumb)`` (tests check it). They are
computed here with numpy because imagehash's own pipeline costs 2.5 ms per TrashNet photo and
0.2 ms per CIFAR image (measured), as much as decoding itself on CIFAR-10's 60,000 images; these
functions run inside the one decode pass, on its decoded image, for a few tens of microseconds.

Two images are near-duplicates when their pHashes differ in at most :data:`PHASH_MAX` bits
**and** their dHashes in at most :data:`DHASH_MAX`. Measured (scripts' output in the issue note):

- TrashNet (2,521 photos): pHash distance 0-4 finds 27 pairs, 24 of them the same object
  photographed twice; the other 3 are different small objects on the same white board, where a
  mostly blank image's pHash is its lighting. Their dHash distances are 12, 12 and 21; the 24
  true pairs' are at most 7. At pHash 6-8 most pairs are different objects.
- CIFAR-10 (60,000): pHash <= 4 finds 406 pairs, the known near-duplicates (the same photo
  recoloured, shifted or rescaled; Barz & Denzler 2020, "ciFAIR"), 336 of them within dHash 8.
- Synthetic shapes on noise (the tests' images): 72 pairs at pHash <= 4 among 1,200 images of
  32 px, none within dHash 8 as well.

Images under :data:`MIN_SIDE` pixels on a side get no hash: a 64-bit hash of an 8 x 8 digit sees
all of it, and scikit-learn's digits give 63 pairs at pHash <= 4 that are all different
handwriting of one digit. For them only byte-identical copies count.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMB = 32  # the thumbnail both hashes are computed from
MIN_SIDE = 32  # smaller images are compared for identical bytes only
PHASH_MAX = 4  # pHash bits that may differ (distances between balanced hashes are even: 0, 2, 4)
DHASH_MAX = 8  # and dHash bits

_k = np.arange(THUMB)
# Rows 0..7 of scipy.fftpack.dct's unnormalised DCT-II matrix: y[k] = 2 sum_n x[n] cos(pi k (2n+1) / 2N).
_DCT8 = 2.0 * np.cos(np.pi * _k[:8, None] * (2 * _k[None, :] + 1) / (2 * THUMB))


def _box_matrix(n_out: int, n_in: int = THUMB) -> np.ndarray:
    """(n_out, n_in) area-averaging weights: output cell j is the mean of input [j, j + 1) * n_in / n_out."""
    edges = np.arange(n_out + 1) * n_in / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    overlap = np.clip(np.minimum(hi, _k[None, :n_in] + 1) - np.maximum(lo, _k[None, :n_in]), 0, None)
    return overlap / (n_in / n_out)


_DHASH_ROWS, _DHASH_COLS = _box_matrix(8), _box_matrix(9).T  # the thumbnail averaged to 8 rows x 9 columns


def thumbnail(img: Image.Image) -> np.ndarray | None:
    """The 32 x 32 grey thumbnail (uint8) both hashes are computed from, or None for an image
    under :data:`MIN_SIDE` pixels on a side."""
    if min(img.size) < MIN_SIDE:
        return None
    if img.size != (THUMB, THUMB):  # Pillow resamples even to the same size (100 us for a CIFAR image)
        img = img.resize((THUMB, THUMB), Image.Resampling.BOX)
    # frombuffer: np.asarray of a Pillow image costs 7x more (measured: 105 us against 14 us)
    return np.frombuffer(img.convert("L").tobytes(), dtype=np.uint8).reshape(THUMB, THUMB)


def hash_thumbnails(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pHash, dHash) of N thumbnails (N x 32 x 32 uint8), each a uint64 array, in a few
    vectorised operations (per image they would cost ~100 us of numpy call overhead, as much as
    decoding a CIFAR image).

    pHash is imagehash's ``phash(thumb)`` bit for bit. dHash is Krawetz's difference hash as
    imagehash computes it (is each cell brighter than its left neighbour, on an 8 x 9 grid), with
    the grid an exact area average of the thumbnail rather than Pillow's rounded Lanczos resize.
    """
    t = np.asarray(thumbs, dtype=np.float64).reshape(-1, THUMB, THUMB)
    # Rounded far below a grey level's effect: a flat image's AC coefficients are float noise
    # around 0 (1e-13), which must tie with the median, as in scipy's DCT, not outvote it.
    low = np.round((_DCT8 @ t @ _DCT8.T).reshape(len(t), 64), 6)
    middle = np.sort(low, axis=1)[:, 31:33]  # the median of 64 values: the mean of the middle two
    phash = _pack(low > middle.mean(axis=1, keepdims=True))
    grid = _DHASH_ROWS @ t @ _DHASH_COLS
    dhash = _pack((grid[:, :, 1:] > grid[:, :, :-1]).reshape(len(t), 64))
    return phash, dhash


def _pack(bits: np.ndarray) -> np.ndarray:
    """(N, 64) booleans -> N uint64, the first bit most significant (as imagehash prints a hash)."""
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.astype(np.uint64).view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1).astype(np.int64)


def near_duplicate_pairs(phash: np.ndarray, dhash: np.ndarray, hashed: np.ndarray | None = None) -> np.ndarray:
    """(i, j) index pairs, i < j, of near-duplicates among hashes (uint64 arrays); ``hashed``
    (booleans) marks the images that have hashes, by default all. Returns int64 (pairs, 2).

    Exhaustive comparison is quadratic (43 s for CIFAR-10's 60,000 images), so the search uses the
    pigeonhole principle: split the 64 pHash bits into PHASH_MAX + 1 blocks; two hashes at most
    PHASH_MAX bits apart agree exactly on at least one block, so only images sharing a block value
    are compared. Images with equal hash pairs are joined first and searched once.
    """
    phash, dhash = np.asarray(phash, dtype=np.uint64), np.asarray(dhash, dtype=np.uint64)
    hashed = np.arange(len(phash)) if hashed is None else np.flatnonzero(hashed)
    if len(hashed) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    both = np.stack([phash[hashed], dhash[hashed]], axis=1)
    unique, first, inverse = np.unique(both, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    pairs = [_same_value_pairs(inverse, hashed)]  # identical hashes: distance 0
    up, ud = unique[:, 0], unique[:, 1]
    candidates = _block_candidates(up)
    if len(candidates):
        a, b = candidates[:, 0], candidates[:, 1]
        close = (popcount(up[a] ^ up[b]) <= PHASH_MAX) & (popcount(ud[a] ^ ud[b]) <= DHASH_MAX)
        # Each unique hash stands for its first image; the others join it through the equal-hash pairs.
        pairs.append(np.stack([hashed[first[a[close]]], hashed[first[b[close]]]], axis=1))
    out = np.sort(np.concatenate(pairs), axis=1)
    # One code per pair, so duplicates (found through several blocks) go in a 1-D unique.
    codes = np.unique(out[:, 0] * len(phash) + out[:, 1])
    return np.stack([codes // len(phash), codes % len(phash)], axis=1)


def _same_value_pairs(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Pairs (first image of a value, another image of it) for every repeated value."""
    order = np.argsort(values, kind="stable")
    sv = values[order]
    starts = np.r_[0, np.flatnonzero(sv[1:] != sv[:-1]) + 1]
    head = np.repeat(order[starts], np.diff(np.r_[starts, len(sv)]))
    keep = head != order
    return np.stack([index[head[keep]], index[order[keep]]], axis=1).astype(np.int64)


def _block_candidates(h: np.ndarray) -> np.ndarray:
    """Pairs (i < j, possibly repeated) of hashes that agree on at least one of PHASH_MAX + 1 bit blocks."""
    n_blocks = PHASH_MAX + 1
    edges = np.linspace(0, 64, n_blocks + 1).round().astype(int)
    found = [np.zeros((0, 2), dtype=np.int64)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        block = (h >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(block, kind="stable")
        sb = block[order]
        # Compare each hash with the ones k places after it in block order while any still match:
        # k stops at the largest group of equal block values (174 of CIFAR-10's 60,000).
        for k in range(1, len(sb)):
            same = sb[k:] == sb[:-k]
            if not same.any():
                break
            found.append(np.stack([order[:-k][same], order[k:][same]], axis=1))
    return np.sort(np.concatenate(found), axis=1)


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` items joined by ``pairs``: a cluster number per item
    (items in no pair get a cluster of their own)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def to_signed(h: int) -> int:
    """An unsigned 64-bit hash as SQLite's signed INTEGER."""
    return h - (1 << 64) if h >= 1 << 63 else h


def to_unsigned(h: int) -> int:
    return h + (1 << 64) if h < 0 else h
