"""What ``Predictor.predict`` and ``imgclf predict`` accept, turned into named images to decode.

Paths (str or PathLike; folders are walked for image files, glob patterns expanded), encoded bytes,
``(name, bytes)`` pairs, PIL images and numpy uint8 arrays (HW grayscale or HWC; a 4-D NHWC array
is a batch). Each becomes an :class:`Item`; decoding it (in a worker thread) gives pixels fitted by
the model's one preprocessing definition, or the reason it cannot be used, so an unreadable input
becomes an error row instead of an exception. Broken and looping symbolic links are inputs too,
with their own reason, whether named, found in a folder or matched by a glob.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data.decode import DecodeError, is_image_name
from .data.preprocess import Preprocess
from .data.sources import BUILTIN_PREFIX, open_source
from .errors import UserError

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Item:
    """One image to predict: its name in the output and how to get its fitted pixels."""

    name: str
    read: Callable[[Preprocess], np.ndarray]  # raises DecodeError or OSError

    def load(self, pre: Preprocess) -> tuple[str, np.ndarray | None, str | None]:
        """(name, fitted HWC uint8 pixels or None, reason or None)."""
        try:
            return self.name, self.read(pre), None
        except DecodeError as exc:
            return self.name, None, exc.reason
        except OSError as exc:
            return self.name, None, read_error(self.name, exc)


def is_single(inputs) -> bool:
    """Whether ``inputs`` is one image (one Prediction) rather than a collection (a list of them).

    A path to a folder or a glob pattern is one argument but many images: a collection.
    """
    if isinstance(inputs, str | os.PathLike):
        spec = os.fsdecode(inputs)
        return bool(spec) and not (Path(spec).expanduser().is_dir() or _is_glob(spec))
    if isinstance(inputs, np.ndarray):
        return inputs.ndim in (2, 3)
    return isinstance(inputs, bytes | bytearray | memoryview | Image.Image) or _is_named_bytes(inputs)


def to_items(inputs) -> list[Item]:
    """The images of ``inputs`` (one input or an iterable of them), in order."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        inputs = list(inputs)  # NHWC: a batch of images
    elif is_single(inputs) or isinstance(inputs, str | os.PathLike):  # one image, or one folder / glob
        inputs = [inputs]
    if not isinstance(inputs, Iterable):
        raise UserError(f"cannot predict a {type(inputs).__name__}: pass paths, bytes, PIL images or numpy uint8 arrays")
    items: list[Item] = []
    for n, x in enumerate(inputs):
        if isinstance(x, str | os.PathLike):
            spec = os.fsdecode(x)
            if not spec:
                raise UserError("an input path is empty")
            if Path(spec).expanduser().is_dir() or _is_glob(spec):
                items += [_path_item(p) for p in expand_inputs([spec])]
            else:
                items.append(_path_item(spec))
        elif isinstance(x, bytes | bytearray | memoryview):
            data = bytes(x)
            items.append(Item(f"<bytes #{n}>", lambda pre, d=data: pre.load(d)))
        elif _is_named_bytes(x):
            name, data = x
            items.append(Item(str(name), lambda pre, d=bytes(data): pre.load(d)))
        elif isinstance(x, Image.Image):
            items.append(Item(f"<PIL image #{n}>", lambda pre, img=x: pre.load_image(img)))
        elif isinstance(x, np.ndarray):
            items.append(Item(f"<array #{n}>", lambda pre, a=x: pre.load_array(a)))
        else:
            raise UserError(f"cannot predict a {type(x).__name__}: pass paths, bytes, PIL images or numpy uint8 arrays")
    return items


def _path_item(path: str) -> Item:
    return Item(path, lambda pre: pre.load(Path(path).expanduser().read_bytes()))


def read_error(path: str, exc: OSError) -> str:
    """A short reason for an unreadable file, naming broken and looping symbolic links as such."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    path = os.path.expanduser(path)
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    return f"cannot read file ({exc.strerror or exc})"


def expand_inputs(specs: Iterable[str], limit: int | None = None) -> list[str]:
    """Files, folders (recursively, image files only) and glob patterns -> a sorted list of files.

    Symbolic links that lead nowhere (broken, or looping) are kept, so that they get an error row
    instead of vanishing. ``builtin:NAME`` is not a file: the caller handles it through
    :func:`builtin_inputs`.
    """
    out: list[str] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if _is_file_or_dangling(f) and is_image_name(f.name))
            if not found:
                raise UserError(f"folder {spec} holds no image files")
            out += found
        elif p.exists() or p.is_symlink():
            out.append(str(p))
        elif _is_glob(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                raise UserError(f"no file matches {spec}")
            out += [m for m in matches if _is_file_or_dangling(Path(m))]
        else:
            raise UserError(f"input {spec} does not exist")
    return out[:limit] if limit else out


def builtin_inputs(spec: str, limit: int | None = None) -> list[tuple[str, bytes]]:
    """(name, encoded bytes) for images of a built-in dataset, for trying a model without files."""
    if not spec.startswith(BUILTIN_PREFIX):
        raise ValueError(spec)
    source = open_source(spec)
    samples = source.samples[:limit] if limit else source.samples
    return [(f"{spec}/{s.path}", source.read_bytes(s.path)) for s in samples]


def printable(text: str) -> str:
    """``text`` as valid UTF-8: bytes of a file name that were not UTF-8 (kept by Python as
    surrogate escapes) become U+FFFD, so CSV, JSON and terminals can show the rest of the name."""
    try:
        return os.fsencode(text).decode("utf-8", "replace")
    except UnicodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


def _is_file_or_dangling(p: Path) -> bool:
    # is_file() is False for a broken or looping link; a link to a folder is a folder, not an input.
    return p.is_file() or (p.is_symlink() and not p.is_dir())


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in GLOB_CHARS) and not Path(spec).expanduser().exists()


def _is_named_bytes(x) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], bytes | bytearray | memoryview)
