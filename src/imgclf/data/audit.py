"""The dataset health check behind ``imgclf data check``: what training would read, and what is wrong.

:func:`check_data` reads every image once (in parallel), decodes it with the same
:func:`~imgclf.data.decode.decode_rgb` training uses, and reports unreadable files with their
reasons, class balance, image sizes, colour modes and formats, exact duplicates (same file
bytes) and near-duplicates (perceptual hashes, :mod:`.near_duplicates`), including copies that
leak across the train/val/test splits training would use, what a centre crop would cut away and
the resize mode and channel count `imgclf train` would choose (:mod:`.resize_choice`).
:func:`format_check` turns that report into plain-text tables for a terminal.

Splits are assigned exactly as :func:`imgclf.data.dataset.prepare` assigns them (same function,
same arguments, over the full listing before unreadable files are dropped), so a leak reported
here is a leak in the run that ``imgclf train`` with the same seed and fractions would make.
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..progress import progress_iter
from .audit_problems import (
    _KIND_ORDER,
    CONFLICTING_LABELS,
    DUPLICATE,
    LEAKAGE,
    WITHIN_SPLIT,
    problems,
)
from .audit_text import format_check  # re-exported: callers have always found it here
from .dataset import _apply_group_column, _natural_key
from .decode import DecodeError, decode_rgb
from .header_scan import _is_grey
from .leakage import DuplicateGroups, find_duplicate_groups, group_labels
from .near_duplicates import hash_thumbnails, thumbnail
from .resize_choice import (
    CROP_LOSS_LIMIT,
    aspect_text,
    choose_channels,
    choose_resize,
    crop_report,
)
from .sources import SPLITS, Source, open_source
from .splits import assign_splits


@dataclass
class _ImageInfo:
    """What one read of one file tells us. ``reason`` is set when the image is unusable."""

    hash: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    grey: bool | None = None
    thumb: np.ndarray | None = None  # the near-duplicate hashes' thumbnail
    reason: str | None = None


def _inspect(source: Source, path: str) -> _ImageInfo:
    """Read, hash, identify and fully decode one file. Never raises: failures become a reason."""
    info = _ImageInfo()
    try:
        data = source.read_bytes(path)
    except OSError as exc:
        info.reason = f"cannot read file ({exc.strerror or exc})"
        return info
    except Exception as exc:  # noqa: BLE001 - a source that fails on one file must not stop the check
        info.reason = f"cannot read file ({exc})"
        return info
    info.hash = "blake2b:" + hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        # Opening parses the header only: the stored format and colour mode, before conversion to RGB.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decode_rgb's limit decides below
            with Image.open(io.BytesIO(data)) as img:
                info.format, info.mode, info.grey = img.format, img.mode, _is_grey(img)
    except Exception:  # noqa: BLE001 - decode_rgb below gives the reason
        pass
    try:
        # A full decode (no draft) is the only way to find truncated or corrupt image data.
        rgb = decode_rgb(data)
        # The size as displayed (EXIF orientation applied), which is what training sees.
        info.width, info.height = rgb.size
        info.thumb = thumbnail(rgb)
    except DecodeError as exc:
        info.reason = exc.reason
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError inside a codec
        info.reason = f"corrupt image ({type(exc).__name__}: {exc})"
    return info


def check_data(
    data: str | os.PathLike | Source,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_column: str | None = None,
    workers: int | None = None,
    max_imbalance: float = 10.0,
    group_duplicates: bool = False,
) -> dict:
    """Check a dataset and return a JSON-serialisable report.

    The report holds ``source``, ``images_found``, ``images_readable``, ``classes``,
    ``class_counts`` (readable images per class), ``imbalance_ratio`` (largest over smallest class;
    None when a class has no readable image), ``unreadable`` (path, label, reason),
    ``files_ignored``, ``duplicates`` (groups of byte-identical files with their ``labels``,
    ``splits``, primary ``kind`` and all ``kinds``), ``split_source``, ``split_method``,
    ``split_sizes``, ``split_class_counts``, ``sizes``, ``modes`` and ``formats`` (of readable
    images), ``problems`` (severity + message) and ``ok`` (no errors).

    Also ``near_duplicates`` (groups of near-identical images that are not all byte-identical,
    shaped like ``duplicates``), ``crop`` (what a centre crop would cut away, and the resize mode
    ``--resize auto`` picks) and ``channels`` (how many are grey, and the channel count training
    picks).

    The split arguments mean what they mean to ``imgclf train`` (``group_duplicates`` too).
    Raises :class:`UserError` only for mistakes in the request (a missing path, an unknown group
    column); bad data is reported.
    """
    source = data if isinstance(data, Source) else open_source(data)
    samples = list(source.samples)
    if group_column:
        samples = _apply_group_column(source, samples, group_column)

    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(workers) as pool:
        infos = list(
            progress_iter(
                pool.map(lambda s: _inspect(source, s.path), samples),
                total=len(samples),
                description="checking images",
            )
        )

    readable = [i for i, info in enumerate(infos) if info.reason is None]
    dups = _near_groups(infos)
    groups = [s.group for s in samples] if group_column else None
    if group_duplicates:
        groups = group_labels(dups, groups)

    # Split the full listing (unreadable images too), as prepare() does, so the splits match training's.
    split_of: list[str | None]
    split_error = None
    if samples:
        try:
            split_of, split_method = assign_splits(
                [s.label for s in samples],
                [s.split for s in samples],
                groups=groups,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
                seed=seed,
            )
        except ValueError as exc:
            split_error = f"cannot split the data: {exc}"
            split_of, split_method = [None] * len(samples), split_error
    else:
        split_of, split_method = [], "no images"

    classes = sorted({s.label for s in samples}, key=_natural_key)
    counts = Counter(samples[i].label for i in readable)
    class_counts = {c: counts[c] for c in classes}
    smallest = min(class_counts.values(), default=0)
    imbalance = round(max(class_counts.values()) / smallest, 3) if smallest > 0 else None

    unreadable = [
        {"path": samples[i].path, "label": samples[i].label, "reason": info.reason}
        for i, info in enumerate(infos)
        if info.reason is not None
    ]
    ignored = [{"path": x.path, "reason": x.reason} for x in source.ignored]
    duplicates = _duplicate_groups(samples, split_of, infos, readable)
    near = [_describe_group(samples, split_of, m, None) for c, m in dups.members().items() if not dups.exact[c]]
    near.sort(key=lambda g: (_KIND_ORDER[g["kind"]], g["paths"][0]))

    per_split = Counter((split_of[i], samples[i].label) for i in readable)
    split_sizes = {sp: sum(per_split[sp, c] for c in classes) for sp in SPLITS}
    split_class_counts = {sp: {c: per_split[sp, c] for c in classes} for sp in SPLITS}
    if split_error:
        split_source = split_error
    elif split_method == "predefined":
        split_source = "predefined"
    else:
        made = "the missing splits" if source.has_predefined_splits else "the splits"
        split_source = (
            f"{made} are the ones `imgclf train` makes with seed={seed}, val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}" + (f", group column {group_column!r}" if group_column else "")
            + f" ({split_method})"
        )

    report = {
        "source": source.describe(),
        "images_found": len(samples),
        "images_readable": len(readable),
        "images_unreadable": len(unreadable),
        "classes": classes,
        "class_counts": class_counts,
        "imbalance_ratio": imbalance,
        "max_imbalance": max_imbalance,
        "unreadable": unreadable,
        "files_ignored": ignored,
        "duplicates": duplicates,
        "split_source": split_source,
        "split_method": split_method,
        "split_sizes": split_sizes,
        "split_class_counts": split_class_counts,
        "sizes": _size_summary([infos[i] for i in readable]),
        "modes": _counts(infos[i].mode or "unknown" for i in readable),
        "formats": _counts(infos[i].format or "unknown" for i in readable),
        "near_duplicates": near,
        "crop": _crop_summary(samples, infos, readable),
        "channels": _channels_summary(infos, readable),
    }
    report["problems"] = problems(report, split_error)
    report["ok"] = not any(p["severity"] == "error" for p in report["problems"])
    return report


def _duplicate_groups(samples, split_of, infos, readable) -> list[dict]:
    """Groups of readable samples with byte-identical files, most serious kind first."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i in readable:
        by_hash[infos[i].hash].append(i)
    groups = [_describe_group(samples, split_of, idx, digest) for digest, idx in by_hash.items() if len(idx) >= 2]
    groups.sort(key=lambda g: (_KIND_ORDER[g["kind"]], g["paths"][0]))
    return groups


def _describe_group(samples, split_of, idx: list[int], digest: str | None) -> dict:
    labels = [samples[i].label for i in idx]
    splits = [split_of[i] for i in idx]
    kinds = []
    if None not in splits and len(set(splits)) > 1:
        kinds.append(LEAKAGE)
    if len(set(labels)) > 1:
        kinds.append(CONFLICTING_LABELS)
    if not kinds:
        kinds.append(WITHIN_SPLIT if None not in splits else DUPLICATE)
    return {
        **({"hash": digest} if digest else {}),
        "paths": [samples[i].path for i in idx], "labels": labels, "splits": splits, "kind": kinds[0], "kinds": kinds,
    }  # fmt: skip


def _near_groups(infos: list[_ImageInfo]) -> DuplicateGroups:
    """Groups of identical or near-identical readable images (perceptual hashes of their thumbnails)."""
    have = [i for i, info in enumerate(infos) if info.reason is None and info.thumb is not None]
    phash, dhash = np.zeros(len(infos), np.uint64), np.zeros(len(infos), np.uint64)
    hashed = np.zeros(len(infos), dtype=bool)
    if have:
        phash[have], dhash[have] = hash_thumbnails(np.stack([infos[i].thumb for i in have]))
        hashed[have] = True
    return find_duplicate_groups([info.hash if info.reason is None else None for info in infos], phash, dhash, hashed)


def _crop_summary(samples, infos, readable) -> dict:
    """What a centre crop would cut, and the resize mode training's ``--resize auto`` picks."""
    sizes = [(infos[i].width, infos[i].height) for i in readable]
    report = crop_report(sizes, worst=5)
    worst = [
        {"path": samples[readable[j]].path, "width": sizes[j][0], "height": sizes[j][1],
         "aspect": aspect_text(*sizes[j]), "cut": round(loss, 3)}
        for j, loss in report.worst
    ]  # fmt: skip
    return {"over_limit": report.over_limit, "share": round(report.share, 4), "limit": CROP_LOSS_LIMIT, "worst": worst,
            "resize_auto": choose_resize(sizes)[0]}  # fmt: skip


def _channels_summary(infos, readable) -> dict:
    """How many readable images are stored as grey, and the channel count training picks by default."""
    greys = [infos[i].grey for i in readable]
    return {"grey": sum(1 for g in greys if g), "channels_auto": choose_channels(greys)[0]}


def _size_summary(infos: list[_ImageInfo]) -> dict:
    if not infos:
        return {"width": None, "height": None, "most_common": [], "distinct": 0}
    widths = [i.width for i in infos]
    heights = [i.height for i in infos]
    common = Counter((i.width, i.height) for i in infos).most_common(5)
    return {
        "width": {"min": min(widths), "median": statistics.median_low(widths), "max": max(widths)},
        "height": {"min": min(heights), "median": statistics.median_low(heights), "max": max(heights)},
        "most_common": [{"width": w, "height": h, "count": n} for (w, h), n in common],
        "distinct": len({(i.width, i.height) for i in infos}),
    }


def _counts(values) -> dict[str, int]:
    return dict(Counter(values).most_common())


__all__ = ["check_data", "format_check"]
