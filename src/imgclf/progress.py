"""Progress bars for long steps (scanning, decoding, epochs), on stderr so stdout stays clean."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
console = Console(stderr=True, soft_wrap=True)


def make_progress(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )


def progress_iter(
    items: Iterable[T], *, total: int, description: str, min_total: int = 50
) -> Iterator[T]:
    """Yield ``items`` while showing a bar when stderr is a terminal and the job is not tiny."""
    if total < min_total or not console.is_terminal:
        yield from items
        return
    with make_progress(transient=True) as bar:
        task = bar.add_task(description, total=total, info="")
        for item in items:
            yield item
            bar.advance(task)


def log(message: str) -> None:
    """A status line for the user (stderr), e.g. which precision was chosen."""
    console.print(message, highlight=False)
    sys.stderr.flush()
