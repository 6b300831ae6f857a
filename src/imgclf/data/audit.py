"""The dataset health check behind ``imgclf data check``: what training would read, and what is wrong.

:func:`check_data` reads every image once (in parallel), decodes it with the same
:func:`~imgclf.data.decode.decode_rgb` training uses, and reports unreadable files with their
reasons, class balance, image sizes, colour modes and formats, and exact duplicates (same file
bytes), including copies that leak across the train/val/test splits training would use.
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

from PIL import Image

from ..progress import progress_iter
from .audit_text import format_check  # re-exported: callers have always found it here
from .dataset import _apply_group_column, _natural_key
from .decode import DecodeError, decode_rgb
from .sources import SPLITS, Source, open_source
from .splits import assign_splits

# Duplicate kinds, most serious first. A group whose copies sit in different splits is reported as
# "leakage" even when its labels also differ; ``kinds`` lists every kind that applies.
LEAKAGE = "leakage"
CONFLICTING_LABELS = "conflicting-labels"
WITHIN_SPLIT = "within-split"
DUPLICATE = "duplicate"  # splits unknown (the data could not be split)
_KIND_ORDER = {LEAKAGE: 0, CONFLICTING_LABELS: 1, WITHIN_SPLIT: 2, DUPLICATE: 3}

_EXAMPLES = 3  # how many paths a problem message names before "and N more"


@dataclass
class _ImageInfo:
    """What one read of one file tells us. ``reason`` is set when the image is unusable."""

    hash: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
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
                info.format, info.mode = img.format, img.mode
    except Exception:  # noqa: BLE001 - decode_rgb below gives the reason
        pass
    try:
        # A full decode (no draft) is the only way to find truncated or corrupt image data.
        rgb = decode_rgb(data)
        # The size as displayed (EXIF orientation applied), which is what training sees.
        info.width, info.height = rgb.size
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
) -> dict:
    """Check a dataset and return a JSON-serialisable report.

    The report holds ``source``, ``images_found``, ``images_readable``, ``classes``,
    ``class_counts`` (readable images per class), ``imbalance_ratio`` (largest over smallest class;
    None when a class has no readable image), ``unreadable`` (path, label, reason),
    ``files_ignored``, ``duplicates`` (groups of byte-identical files with their ``labels``,
    ``splits``, primary ``kind`` and all ``kinds``), ``split_source``, ``split_method``,
    ``split_sizes``, ``split_class_counts``, ``sizes``, ``modes`` and ``formats`` (of readable
    images), ``problems`` (severity + message) and ``ok`` (no errors).

    The split arguments mean what they mean to ``imgclf train``. Raises :class:`UserError` only for
    mistakes in the request (a missing path, an unknown group column); bad data is reported.
    """
    source = data if isinstance(data, Source) else open_source(data)
    samples = list(source.samples)
    if group_column:
        samples = _apply_group_column(source, samples, group_column)

    # Split the full listing first, as prepare() does, so the splits match training's.
    split_of: list[str | None]
    split_error = None
    if samples:
        try:
            split_of, split_method = assign_splits(
                [s.label for s in samples],
                [s.split for s in samples],
                groups=[s.group for s in samples] if group_column else None,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
                seed=seed,
            )
        except ValueError as exc:
            split_error = f"cannot split the data: {exc}"
            split_of, split_method = [None] * len(samples), split_error
    else:
        split_of, split_method = [], "no images"

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
    }
    report["problems"] = _problems(report, split_error)
    report["ok"] = not any(p["severity"] == "error" for p in report["problems"])
    return report


def _duplicate_groups(samples, split_of, infos, readable) -> list[dict]:
    """Groups of readable samples with byte-identical files, most serious kind first."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i in readable:
        by_hash[infos[i].hash].append(i)
    groups = []
    for digest, idx in by_hash.items():
        if len(idx) < 2:
            continue
        labels = [samples[i].label for i in idx]
        splits = [split_of[i] for i in idx]
        kinds = []
        if None not in splits and len(set(splits)) > 1:
            kinds.append(LEAKAGE)
        if len(set(labels)) > 1:
            kinds.append(CONFLICTING_LABELS)
        if not kinds:
            kinds.append(WITHIN_SPLIT if None not in splits else DUPLICATE)
        groups.append(
            {
                "hash": digest,
                "paths": [samples[i].path for i in idx],
                "labels": labels,
                "splits": splits,
                "kind": kinds[0],
                "kinds": kinds,
            }
        )
    groups.sort(key=lambda g: (_KIND_ORDER[g["kind"]], g["paths"][0]))
    return groups


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


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def _problems(r: dict, split_error: str | None) -> list[dict]:
    errors, warnings = [], []
    if r["images_found"] == 0:
        errors.append("no images found")
    if r["unreadable"]:
        n = len(r["unreadable"])
        errors.append(
            f"{n} unreadable image{'s' * (n != 1)} (training skips them): "
            + _examples([f"{u['path']} ({u['reason']})" for u in r["unreadable"]])
        )
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for g in r["duplicates"]:
        for k in g["kinds"]:
            by_kind[k].append(g)
    if by_kind[LEAKAGE]:
        n = len(by_kind[LEAKAGE])
        errors.append(
            f"{n} group{'s' * (n != 1)} of identical images in more than one split (leakage: "
            "evaluation scores will be too optimistic): "
            + _examples([" = ".join(f"{p} [{s}]" for p, s in zip(g["paths"], g["splits"])) for g in by_kind[LEAKAGE]])
        )
    if by_kind[CONFLICTING_LABELS]:
        n = len(by_kind[CONFLICTING_LABELS])
        errors.append(
            f"{n} group{'s' * (n != 1)} of identical images with conflicting labels: "
            + _examples([" = ".join(f"{p} [{lab}]" for p, lab in zip(g["paths"], g["labels"])) for g in by_kind[CONFLICTING_LABELS]])
        )
    if split_error:
        errors.append(split_error)
    empty = [c for c, n in r["class_counts"].items() if n == 0]
    if empty:
        errors.append(
            f"{len(empty)} class{'es' * (len(empty) != 1)} with no readable image: {_examples(empty)}"
        )
    if 0 < len(r["classes"]) < 2:
        errors.append(
            f"only one class ({r['classes'][0]!r}): a classifier needs at least two (one folder per class)"
        )
    plain = by_kind[WITHIN_SPLIT] + by_kind[DUPLICATE]
    if plain:
        n = len(plain)
        extra = sum(len(g["paths"]) - 1 for g in plain)
        warnings.append(
            f"{n} group{'s' * (n != 1)} of identical images within one split ({extra} redundant "
            f"cop{'ies' if extra != 1 else 'y'}): " + _examples([" = ".join(g["paths"]) for g in plain])
        )
    ratio = r["imbalance_ratio"]
    if ratio is not None and ratio > r["max_imbalance"]:
        big = max(r["class_counts"], key=r["class_counts"].get)
        small = min(r["class_counts"], key=r["class_counts"].get)
        warnings.append(
            f"class imbalance {ratio:g}:1 is above {r['max_imbalance']:g}:1 "
            f"({big!r} has {r['class_counts'][big]} images, {small!r} has {r['class_counts'][small]})"
        )
    if r["files_ignored"]:
        n = len(r["files_ignored"])
        warnings.append(
            f"{n} file{'s' * (n != 1)} ignored: "
            + _examples([f"{x['path']} ({x['reason']})" for x in r["files_ignored"]])
        )
    return [{"severity": "error", "message": m} for m in errors] + [
        {"severity": "warning", "message": m} for m in warnings
    ]


__all__ = ["check_data", "format_check"]
