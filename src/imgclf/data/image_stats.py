"""Per-image input statistics, and the baseline that drift monitoring compares live traffic with.

Computed from decoded uint8 pixels (RGB, or grayscale as H x W or H x W x 1) plus the image's
original width and height. Pure numpy: no torch, no OpenCV. Compute them on the same pixels at
training and at serving time (e.g. after the same resize): pixel statistics such as sharpness
depend on resolution, and the baseline is only comparable with like.

    brightness      mean luma (ITU-R BT.601 weights, as Pillow's convert("L")), 0..255
    contrast        standard deviation of luma (RMS contrast), 0..~128
    colourfulness   Hasler & Suesstrunk (2003): sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)
                    with rg = R - G, yb = (R + G) / 2 - B; 0 for grey images. Chosen over HSV
                    saturation because it does not blow up for dark pixels (S = (max-min)/max).
    mean_r/g/b      mean of each channel, 0..255
    sharpness       variance of the 4-neighbour Laplacian of luma (blur lowers it); 0 below 3 x 3
    width, height   the original image size in pixels (before any resize)
    aspect_ratio    width / height
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

STATISTICS = (
    "brightness", "contrast", "colourfulness", "mean_r", "mean_g", "mean_b",
    "sharpness", "width", "height", "aspect_ratio",
)  # fmt: skip
BASELINE_FORMAT = "imgclf-drift-baseline"
BASELINE_VERSION = 1
CONFIDENCE = "confidence"  # the baseline's name for the model's top-1 probability
DEFAULT_SAMPLE_SIZE = 2000  # reference values kept per statistic: KS power saturates well before this
DEFAULT_BINS = 10  # PSI's customary decile bins
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 64  # images per vectorised step: bounds float32 working memory (64 x 224^2 x 3 x 4 B = 39 MB)


def image_stats(pixels: np.ndarray, width: int | None = None, height: int | None = None) -> dict[str, float]:
    """The statistics of one image (``pixels``: H x W x 3, H x W x 1 or H x W, uint8)."""
    arr = _as_hwc(np.asarray(pixels))
    columns = _stats_of_stack(arr[None], [(width or arr.shape[1], height or arr.shape[0])])
    return {name: float(values[0]) for name, values in columns.items()}


def batch_image_stats(
    images: np.ndarray | Sequence[np.ndarray], sizes: Sequence[tuple[int, int]] | None = None
) -> dict[str, np.ndarray]:
    """Statistics of many images, as one float64 array per statistic.

    ``images`` is an N x H x W x C array (C = 1 or 3; N x H x W is a grayscale batch), computed in
    vectorised chunks, or a sequence of arrays of any sizes, computed one by one. ``sizes`` holds
    each image's original (width, height); by default the pixel arrays' own.
    """
    if isinstance(images, np.ndarray):
        stack = images[..., None] if images.ndim == 3 else images
        if stack.ndim != 4:
            raise ValueError(f"expected N x H x W x C pixels, got shape {images.shape}")
        stack = _check_channels(stack)
        n = stack.shape[0]
        sizes = list(sizes) if sizes is not None else [(stack.shape[2], stack.shape[1])] * n
        _check_sizes(sizes, n)
        parts = [_stats_of_stack(stack[i : i + _CHUNK], sizes[i : i + _CHUNK]) for i in range(0, n, _CHUNK)]
        if not parts:
            return {name: np.zeros(0) for name in STATISTICS}
        return {name: np.concatenate([p[name] for p in parts]) for name in STATISTICS}
    images = list(images)
    sizes = list(sizes) if sizes is not None else [None] * len(images)
    _check_sizes(sizes, len(images))
    rows = [image_stats(img, *(size or (None, None))) for img, size in zip(images, sizes)]
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in STATISTICS}


def compute_baseline(
    stats_rows: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
    confidences: Sequence[float] | None = None,
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    bins: int = DEFAULT_BINS,
    seed: int = 0,
) -> dict:
    """The reference distribution of every statistic (and of prediction confidence), JSON-serialisable.

    ``stats_rows`` is what :func:`batch_image_stats` returns (one sequence per statistic) or a
    sequence of per-image dicts. Per statistic the baseline keeps ``n``, mean and std, a random
    sample of at most ``sample_size`` values (the KS test's reference), and quantile bin edges
    with the fraction of all values in each bin (the PSI's expected distribution).
    """
    columns = _columns(stats_rows)
    if confidences is not None:
        columns[CONFIDENCE] = np.asarray(confidences, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    statistics = {}
    for name, values in columns.items():
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"no finite values of {name!r} to build a baseline from")
        sample = values if values.size <= sample_size else rng.choice(values, size=sample_size, replace=False)
        edges = bin_edges(values, bins)
        statistics[name] = {
            "n": int(values.size),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "sample": [float(v) for v in sample],
            "bin_edges": [float(e) for e in edges],
            "bin_fractions": [float(f) for f in bin_fractions(values, edges)],
        }
    return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "statistics": statistics}


def bin_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner quantile edges (deciles by default), duplicates removed: a constant statistic gets one
    edge, so values on either side of it still land in different bins."""
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(values, qs))


def bin_fractions(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Fraction of ``values`` in each of the ``len(edges) + 1`` bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    return counts / max(values.size, 1)


# ---------------------------------------------------------------------------- internals


def _stats_of_stack(stack: np.ndarray, sizes: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Statistics of N same-sized images (N x H x W x C uint8), vectorised over the batch."""
    x = stack.astype(np.float32)
    if x.shape[-1] == 1:
        luma = x[..., 0]
        channel_means = np.repeat(luma.mean(axis=(1, 2))[:, None], 3, axis=1)
        colourfulness = np.zeros(len(x), dtype=np.float64)
    else:
        luma = x @ _LUMA
        channel_means = x.mean(axis=(1, 2))
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        rg, yb = r - g, 0.5 * (r + g) - b
        colourfulness = np.sqrt(rg.var(axis=(1, 2)) + yb.var(axis=(1, 2))) + 0.3 * np.sqrt(
            rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2
        )
    if luma.shape[1] >= 3 and luma.shape[2] >= 3:
        centre = luma[:, 1:-1, 1:-1]
        laplacian = luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] - 4.0 * centre
        sharpness = laplacian.var(axis=(1, 2))
    else:
        sharpness = np.zeros(len(x))
    widths = np.array([w for w, _ in sizes], dtype=np.float64)
    heights = np.array([h for _, h in sizes], dtype=np.float64)
    out = {
        "brightness": luma.mean(axis=(1, 2)),
        "contrast": luma.std(axis=(1, 2)),
        "colourfulness": colourfulness,
        "mean_r": channel_means[:, 0],
        "mean_g": channel_means[:, 1],
        "mean_b": channel_means[:, 2],
        "sharpness": sharpness,
        "width": widths,
        "height": heights,
        "aspect_ratio": widths / np.maximum(heights, 1.0),
    }
    return {name: np.asarray(values, dtype=np.float64) for name, values in out.items()}


def _as_hwc(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected H x W or H x W x C pixels, got shape {arr.shape}")
    return _check_channels(arr)


def _check_channels(arr: np.ndarray) -> np.ndarray:
    if arr.shape[-1] not in (1, 3):
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got {arr.shape[-1]}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    return arr


def _check_sizes(sizes: Sequence, n: int) -> None:
    if len(sizes) != n:
        raise ValueError(f"{len(sizes)} sizes for {n} images")


def _columns(stats_rows) -> dict[str, np.ndarray]:
    if isinstance(stats_rows, Mapping):
        items = stats_rows.items()
    else:
        rows = list(stats_rows)
        names = list(dict.fromkeys(k for row in rows for k in row))
        items = ((k, [row.get(k, np.nan) for row in rows]) for k in names)
    return {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in items}
