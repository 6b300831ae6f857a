"""Move a ``current`` link to a new run, atomically.

The contract with `imgclf serve` (which follows the link): LINK is a symbolic link whose target
is a run directory. It is replaced in one ``rename`` of a freshly made link over the old one, so
a reader resolving LINK at any moment finds the old run or the new one, never no link and never
a half-made one. The target is written relative to LINK's folder when both sit on the same tree,
so a folder of runs and its link can be moved together. Nothing is ever deleted: the old run
stays where it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError


def point_link(link: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Make ``link`` a symbolic link to ``target`` (a run directory), replacing an existing link
    atomically; returns the link's path. A ``link`` that is a real file or folder is refused."""
    link, target = Path(link).expanduser(), Path(target).expanduser()
    if link.exists() and not link.is_symlink():
        raise UserError(f"--promote {link} exists and is not a symbolic link; give the path of a link (it is never deleted)")
    if not target.is_dir():
        raise UserError(f"cannot link {link} to {target}: it is not a run directory")
    link.parent.mkdir(parents=True, exist_ok=True)
    real_parent, real_target = os.path.realpath(link.parent), os.path.realpath(target)
    try:
        pointer = os.path.relpath(real_target, real_parent)
    except ValueError:  # another drive (Windows): no relative path exists
        pointer = real_target
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()  # our own leftover (same process id): a stale temporary link, never data
    os.symlink(pointer, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except OSError as exc:
        tmp.unlink()
        raise UserError(f"cannot move {link} to {target} ({exc.strerror})") from None
    return link
