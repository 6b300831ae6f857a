"""List a data folder's files once each: symlinks followed, loops reported, any file name usable.

``os.walk(followlinks=True)`` follows a link back to an ancestor forever (two such links made
``data check`` and ``train`` hang) and reaches a file or folder linked twice twice. This walk
tracks the real path of every folder and file instead:

- A link to a folder that contains it (``dog/up -> ..``) is a loop: listed as ignored, not followed.
- A file or folder inside the data folder is read under its own (real) path, so it keeps the
  label of the folder it really is in; a link to it from elsewhere in the data (``dog/x.png ->
  ../cat/x.png``, ``dog/cats -> ../cat``) is listed as ignored, naming the real path. That way a
  link can never move an image into another class, and nothing is counted twice.
- A file or folder outside the data folder, linked in more than once, counts once: under the
  first path in the walk's order (folders and names sorted); the later links are ignored.
- Broken links and file links that loop stay in the listing: reading them fails, so they are
  reported as unreadable images with the operating system's reason.

File names that are not valid UTF-8 (Linux allows any bytes) cannot be written to a CSV, JSON or
SQLite text; they are listed under a printable name, the undecodable bytes written as ``\\xNN``,
and :attr:`FolderListing.fs_names` maps that name back to the real one for reading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def printable(text: str) -> str:
    """``text`` with the bytes a non-UTF-8 file name smuggles in (as surrogates) written as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"  # dot files and macOS resource forks are not data


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass
class FolderListing:
    files: list[str] = field(default_factory=list)  # printable relative POSIX paths, sorted
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (printable path, reason)
    fs_names: dict[str, str] = field(default_factory=dict)  # printable path -> real relative path, where they differ


def walk_folder(root: Path) -> FolderListing:
    """Every non-hidden file under ``root`` (a resolved folder), each real file once; see the module notes."""
    top = os.path.realpath(root)
    out = FolderListing()
    seen_dirs: dict[str, str] = {top: "."}  # real folder -> the path it was read under
    seen_files: dict[str, str] = {}  # real file reached by a link or outside ``top`` -> the path it was read under
    # (relative path, real path of that folder, real paths of the folders above it)
    stack: list[tuple[str, str, tuple[str, ...]]] = [("", top, ())]
    files: list[str] = []
    while stack:
        rel_dir, real_dir, ancestors = stack.pop()
        try:
            with os.scandir(real_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.ignored.append((printable(rel_dir), f"cannot read folder ({exc.strerror or exc})"))
            continue
        subdirs = []
        for entry in entries:
            if _hidden(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_link = entry.is_symlink()
            if is_link:
                target = os.path.realpath(entry.path)
                if not os.path.exists(target):
                    files.append(rel)  # broken or looping: reading it reports why
                    continue
                is_dir = os.path.isdir(target)
                reason = _link_reason(target, is_dir, top, real_dir, ancestors)
            else:
                target, is_dir, reason = os.path.join(real_dir, entry.name), entry.is_dir(), None
            if not reason and is_dir and target in seen_dirs:
                reason = f"same folder as {printable(seen_dirs[target])}, already read: its images count once"
            elif not reason and not is_dir and target in seen_files:
                reason = f"same file as {printable(seen_files[target])}: an image counts once"
            if reason:
                out.ignored.append((printable(rel), reason))
            elif is_dir:
                seen_dirs[target] = rel
                subdirs.append((rel, target))
            else:
                if is_link or not _inside(target, top):
                    # A plain file inside the data folder has one path anyway: not recorded, so
                    # memory grows with linked files only.
                    seen_files[target] = rel
                files.append(rel)
        # Pushed in reverse so they are popped, and so read, in sorted order.
        for rel, real in reversed(subdirs):
            stack.append((rel, real, (*ancestors, real_dir)))
    _name_files(files, out)
    return out


def _link_reason(target: str, is_dir: bool, top: str, real_dir: str, ancestors: tuple[str, ...]) -> str | None:
    """Why a symlink is not followed (None: follow it)."""
    if is_dir and (target == real_dir or target in ancestors):
        where = Path(os.path.relpath(target, top)).as_posix() if _inside(target, top) else target
        return f"symlink loop: points back to the folder {printable(where)} that contains it (not followed)"
    inside = _inside(target, top) and not any(_hidden(p) for p in Path(os.path.relpath(target, top)).parts)
    if inside:
        real_rel = printable(Path(os.path.relpath(target, top)).as_posix())
        kind = "folder" if is_dir else "file"
        return f"symlink to the {kind} {real_rel} in this data, which is read under its own path (and label)"
    return None


def _name_files(files: list[str], out: FolderListing) -> None:
    """Give every file a printable name; a non-UTF-8 name whose printable form is taken by a real
    file of that name is ignored (the two could not be told apart in a splits.csv)."""
    names = {printable(f): f for f in files if printable(f) == f}
    for f in files:
        shown = printable(f)
        if shown == f:
            continue
        if shown in names:
            out.ignored.append((shown, "file name is not valid UTF-8 and its printable form names another file; rename it"))
            continue
        names[shown] = f
        out.fs_names[shown] = f
    out.files = sorted(names)
