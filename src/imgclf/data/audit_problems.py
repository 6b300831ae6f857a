"""The problems ``imgclf data check`` reports, as one sentence each, from its report's figures."""

from __future__ import annotations

from collections import defaultdict

# Duplicate kinds, most serious first. A group whose copies sit in different splits is reported as
# "leakage" even when its labels also differ; ``kinds`` lists every kind that applies.
LEAKAGE = "leakage"
CONFLICTING_LABELS = "conflicting-labels"
WITHIN_SPLIT = "within-split"
DUPLICATE = "duplicate"  # splits unknown (the data could not be split)
_KIND_ORDER = {LEAKAGE: 0, CONFLICTING_LABELS: 1, WITHIN_SPLIT: 2, DUPLICATE: 3}

_EXAMPLES = 3  # how many paths a problem message names before "and N more"


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def problems(r: dict, split_error: str | None) -> list[dict]:
    """Errors (training refuses or misleads) first, then warnings, as {"severity", "message"}."""
    errors, warnings = [], []
    if r["images_found"] == 0:
        errors.append("no images found")
    if r["unreadable"]:
        n = len(r["unreadable"])
        errors.append(
            f"{n} unreadable image{'s' * (n != 1)} (training skips them): "
            + _examples([f"{u['path']} ({u['reason']})" for u in r["unreadable"]])
        )
    by_kind = _by_kind(r["duplicates"])
    if by_kind[LEAKAGE]:
        n = len(by_kind[LEAKAGE])
        errors.append(
            f"{n} group{'s' * (n != 1)} of identical images in more than one split (leakage: "
            "evaluation scores will be too optimistic): " + _split_examples(by_kind[LEAKAGE])
        )
    if by_kind[CONFLICTING_LABELS]:
        n = len(by_kind[CONFLICTING_LABELS])
        errors.append(
            f"{n} group{'s' * (n != 1)} of identical images with conflicting labels: "
            + _examples([" = ".join(f"{p} [{lab}]" for p, lab in zip(g["paths"], g["labels"])) for g in by_kind[CONFLICTING_LABELS]])
        )
    near_kind = _by_kind(r.get("near_duplicates", []))
    if near_kind[LEAKAGE]:
        n = len(near_kind[LEAKAGE])
        errors.append(
            f"{n} group{'s' * (n != 1)} of near-identical images in more than one split (leakage: `imgclf train` refuses "
            "such a split, --group-duplicates keeps each group in one split): " + _split_examples(near_kind[LEAKAGE])
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
    near_plain = near_kind[WITHIN_SPLIT] + near_kind[DUPLICATE]
    if near_plain:
        n = len(near_plain)
        warnings.append(
            f"{n} group{'s' * (n != 1)} of near-identical images within one split (the same subject photographed twice, "
            "or an edited copy): " + _examples([" = ".join(g["paths"]) for g in near_plain])
        )
    crop = r.get("crop")
    if crop and crop["over_limit"]:
        n = crop["over_limit"]
        warnings.append(
            f"centre-cropping to a square would cut away more than a quarter of {n} image{'s' * (n != 1)} ({crop['share']:.0%}); "
            "the most cut: " + _examples([f"{w['path']} ({w['aspect']}, {w['cut']:.0%} cut)" for w in crop["worst"]])
            + f"; `imgclf train` uses --resize {crop['resize_auto']} for this data unless told otherwise"
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


def _by_kind(groups: list[dict]) -> dict[str, list[dict]]:
    """Duplicate groups listed under each of their kinds (a group can be several)."""
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for g in groups:
        for k in g["kinds"]:
            by_kind[k].append(g)
    return by_kind


def _split_examples(groups: list[dict]) -> str:
    """A few groups as `path [split] = path [split]`."""
    return _examples([" = ".join(f"{p} [{s}]" for p, s in zip(g["paths"], g["splits"])) for g in groups])
