"""The ``imgclf data check`` report (:func:`imgclf.data.audit.check_data`) as plain-text tables."""

from __future__ import annotations

import io

from .sources import SPLITS

_MAX_ROWS = 20  # rows per listing in the text report; --json has them all


def format_check(report: dict) -> str:
    """The report as plain-text tables (no colour codes), for printing to a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    # markup/emoji off: file names like "cat[1].jpg" or ":x:.png" must print as they are.
    console = Console(
        file=out, width=100, color_system=None, force_terminal=False,
        highlight=False, markup=False, emoji=False,
    )  # fmt: skip

    def line(text: str = "") -> None:
        console.print(text, soft_wrap=True)

    def table(*columns: str) -> Table:
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for c in columns:
            numeric = c in ("images", "share", "train", "val", "test", "min", "median", "max")
            t.add_column(c, justify="right" if numeric else "left", overflow="fold")
        return t

    def section(title: str, t: Table, rows: list) -> None:
        line(title)
        console.print(t)
        if len(rows) > _MAX_ROWS:
            line(f"  ... and {len(rows) - _MAX_ROWS} more (all of them with --json)")
        line()

    def plural(n: int, word: str, many: str | None = None) -> str:
        return f"{n} {word if n == 1 else many or word + 's'}"

    src = report["source"]
    line(f"Data check: {src.get('uri')} ({src.get('kind')})")
    line(
        f"  {plural(report['images_found'], 'image')} found, {report['images_readable']} readable, "
        f"{len(report['unreadable'])} unreadable; "
        f"{plural(len(report['files_ignored']), 'other file')} ignored"
    )
    line(f"  splits: {report['split_source']}")
    line()

    t = table("class", "images", "share", *SPLITS)
    total = max(1, report["images_readable"])
    for c, n in report["class_counts"].items():
        per_split = (str(report["split_class_counts"][sp].get(c, 0)) for sp in SPLITS)
        t.add_row(c, str(n), f"{n / total:.1%}", *per_split)
    t.add_row("total", str(report["images_readable"]), "", *(str(report["split_sizes"][sp]) for sp in SPLITS))
    section(f"Classes ({len(report['class_counts'])}, readable images per split)", t, [])
    ratio = report["imbalance_ratio"]
    line(
        "Imbalance ratio (largest/smallest class): "
        + (f"{ratio:g}" if ratio is not None else "undefined (a class has no readable image)")
    )
    line()

    if report["unreadable"]:
        t = table("path", "label", "reason")
        for u in report["unreadable"][:_MAX_ROWS]:
            t.add_row(u["path"], u.get("label", ""), u["reason"])
        section(f"Unreadable images ({len(report['unreadable'])})", t, report["unreadable"])

    if report["duplicates"]:
        t = table("kind", "path", "label", "split")
        for g in report["duplicates"][:_MAX_ROWS]:
            last = len(g["paths"]) - 1
            for j, (p, lab, sp) in enumerate(zip(g["paths"], g["labels"], g["splits"])):
                kind = ", ".join(g.get("kinds") or [g["kind"]]) if j == 0 else ""
                t.add_row(kind, p, lab, sp or "?", end_section=j == last)
        n = len(report["duplicates"])
        section(f"Identical files ({plural(n, 'group')})", t, report["duplicates"])

    near = report.get("near_duplicates") or []
    if near:
        t = table("kind", "path", "label", "split")
        for g in near[:_MAX_ROWS]:
            last = len(g["paths"]) - 1
            for j, (p, lab, sp) in enumerate(zip(g["paths"], g["labels"], g["splits"])):
                t.add_row(", ".join(g["kinds"]) if j == 0 else "", p, lab, sp or "?", end_section=j == last)
        section(f"Near-identical images ({plural(len(near), 'group')}; perceptual hashes)", t, near)

    if report["files_ignored"]:
        t = table("path", "reason")
        for x in report["files_ignored"][:_MAX_ROWS]:
            t.add_row(x["path"], x["reason"])
        section(f"Files ignored ({len(report['files_ignored'])})", t, report["files_ignored"])

    sizes = report["sizes"]
    if sizes["width"]:
        t = table("", "min", "median", "max")
        for dim in ("width", "height"):
            t.add_row(dim, *(str(sizes[dim][k]) for k in ("min", "median", "max")))
        section("Image sizes (readable images, as displayed)", t, [])
        common = ", ".join(f"{m['width']}x{m['height']} ({m['count']})" for m in sizes["most_common"])
        line(f"Most common sizes: {common}; {plural(sizes['distinct'], 'distinct size')}")
    crop = report.get("crop")
    if crop:
        line(
            f"Centre crop: cuts more than a quarter of {plural(crop['over_limit'], 'image')} "
            f"({crop['share']:.0%}); `imgclf train` would use --resize {crop['resize_auto']}"
        )
    line("Colour modes: " + (", ".join(f"{k} {v}" for k, v in report["modes"].items()) or "none"))
    channels = report.get("channels")
    if channels:
        line(
            f"Grayscale images: {channels['grey']} of {report['images_readable']}; "
            f"`imgclf train` would use --channels {channels['channels_auto']}"
        )
    line("Formats: " + (", ".join(f"{k} {v}" for k, v in report["formats"].items()) or "none"))
    line()

    problems = report["problems"]
    n_err = sum(p["severity"] == "error" for p in problems)
    if problems:
        t = table("severity", "message")
        for p in problems:
            t.add_row(p["severity"].upper(), p["message"])
        section("Problems", t, [])
        line(f"Result: {plural(n_err, 'error')}, {plural(len(problems) - n_err, 'warning')}")
    else:
        line("Result: no problems found")
    return "\n".join(row.rstrip() for row in out.getvalue().splitlines())
