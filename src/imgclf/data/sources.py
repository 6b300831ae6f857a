"""Where images come from: a folder, a zip archive, a CSV/JSONL manifest or a built-in dataset.

:func:`open_source` turns what the user typed into a :class:`Source`: a list of
:class:`Sample` records (path, label, optional split, group and metadata) plus a way to read each
sample's encoded bytes. Nothing here decodes images; nothing here knows about models.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DataError, UserError
from .decode import is_image_name
from .manifest import read_manifest, text_value
from .walk import printable, walk_folder

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip
BUILTIN_PREFIX = "builtin:"
BUILTINS = ("digits",)


def normalize_split(value: str | None) -> str | None:
    """Map a split name as users write it ("valid", "Validation", "") to train/val/test or None."""
    if value is None or str(value).strip() == "":
        return None
    key = str(value).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise DataError(f"unknown split {value!r}: use train, val (or valid/validation) or test")
    return _SPLIT_ALIASES[key]


@dataclass
class Sample:
    path: str  # identifier within the source: a relative POSIX path (or an absolute one for manifests)
    label: str
    split: str | None = None
    group: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Ignored:
    path: str
    reason: str


class Source:
    """A labelled image collection. Subclasses fill ``samples`` and implement :meth:`read_bytes`."""

    kind = "source"

    def __init__(self, uri: str):
        self.uri = uri
        self.samples: list[Sample] = []
        self.ignored: list[Ignored] = []  # files seen but not used as samples, with reasons
        self.meta_columns: list[str] = []

    def read_bytes(self, path: str) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self, path: str) -> str:
        """A cheap identity of ``path``'s current content (no read of the bytes): when it is
        unchanged, the content hash computed earlier still holds. Raises OSError if unreadable."""
        raise NotImplementedError

    def reopen(self) -> None:
        """Drop open file handles (called in a freshly forked worker process)."""

    @property
    def has_predefined_splits(self) -> bool:
        return any(s.split for s in self.samples)

    def describe(self) -> dict:
        return {"uri": printable(self.uri), "kind": self.kind}


def open_source(spec: str | os.PathLike, *, archive_limits: ArchiveLimits | None = None) -> Source:
    """Open a dataset given as a folder, a ``.zip``, a ``.csv``/``.jsonl`` manifest, ``builtin:NAME``
    or a ``.json`` union of those (:mod:`.union_source`).

    ``archive_limits`` caps what one zip member may inflate to (default: :class:`ArchiveLimits`).
    """
    spec = str(spec)
    if spec.startswith(BUILTIN_PREFIX):
        return BuiltinSource(spec[len(BUILTIN_PREFIX):])
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"data path {printable(spec)} does not exist")
    if path.is_dir():
        source: Source = FolderSource(path)
    elif path.suffix.lower() == ".zip":
        source = ZipSource(path, archive_limits)
    elif path.suffix.lower() in (".csv", ".jsonl"):
        source = ManifestSource(path)
    elif path.suffix.lower() == ".json":
        from .union_source import UnionSource  # it builds on this module

        source = UnionSource(path)
    else:
        raise UserError(
            f"{printable(spec)} is not a folder, a .zip archive, a .csv/.jsonl manifest or a .json union of sources; "
            f"see `imgclf data check --help` for the layouts imgclf reads"
        )
    if not source.samples:
        raise DataError(f"no images found in {printable(spec)}")
    return source


# ---------------------------------------------------------------------------- folder layouts


def _layout_from_paths(relpaths: list[str]) -> tuple[list[Sample], list[Ignored]]:
    """Infer class (and split) from folder names.

    ``<class>/<img>`` is folder-per-class; ``<split>/<class>/<img>`` with split in
    train/val(valid, validation)/test is a predefined split. A wrapper folder shared by every
    file (``cifar10/train/...``) is looked through.
    """
    images, ignored = [], []
    for p in relpaths:
        parts = PurePosixPath(p).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue  # hidden files and macOS resource forks are not data
        if not is_image_name(p):
            ignored.append(Ignored(p, "not an image file extension"))
            continue
        images.append((p, parts))
    # Look through wrapper folders: strip the first component while every file shares it and
    # at least <class>/<file> remains below it.
    depth = 0
    while images and all(len(parts) - depth >= 3 for _, parts in images):
        firsts = {parts[depth] for _, parts in images}
        if len(firsts) != 1:
            break
        depth += 1
    firsts = {parts[depth].lower() for _, parts in images if len(parts) > depth + 1}
    # A stray file directly in a split folder (train/x.png) is ignored with a reason; letting it
    # veto the split layout would silently turn "train" and "test" into the classes.
    split_layout = bool(firsts) and firsts <= set(_SPLIT_ALIASES) and any(
        len(parts) - depth >= 3 for _, parts in images
    )
    samples = []
    for p, parts in images:
        rel = parts[depth:]
        if split_layout:
            if len(rel) >= 3:
                samples.append(Sample(p, rel[1], split=_SPLIT_ALIASES[rel[0].lower()]))
            else:
                ignored.append(Ignored(p, "not inside a class folder"))
        elif len(rel) >= 2:
            samples.append(Sample(p, rel[0]))
        else:
            ignored.append(Ignored(p, "not inside a class folder"))
    return samples, ignored


class FolderSource(Source):
    """A folder of images; :func:`~imgclf.data.walk.walk_folder` says how links and odd names are read."""

    kind = "folder"

    def __init__(self, root: Path):
        super().__init__(str(root))
        self.root = root.resolve()
        listing = walk_folder(self.root)
        self._fs_names = listing.fs_names  # printable sample path -> real (non-UTF-8) file name
        self.samples, ignored = _layout_from_paths(listing.files)
        self.ignored = [Ignored(p, r) for p, r in listing.ignored] + ignored

    def _file(self, path: str) -> Path:
        return self.root / self._fs_names.get(path, path)

    def read_bytes(self, path: str) -> bytes:
        return self._file(path).read_bytes()

    def fingerprint(self, path: str) -> str:
        return _stat_fingerprint(self._file(path))


@dataclass(frozen=True)
class ArchiveLimits:
    """What one zip member may inflate to, checked from the archive's central directory before
    anything is decompressed. The defaults sit far above any real image file (a 100-megapixel
    JPEG is about 60 MB, and encoded images barely compress: ratios near 1:1), while a zip bomb
    needs both a huge size and a ratio near deflate's maximum of about 1030:1."""

    max_member_bytes: int = 256 << 20
    max_ratio: float = 1000.0

    def refusal(self, info: zipfile.ZipInfo) -> str | None:
        """Why ``info``'s member must not be read (None: it may)."""
        if info.file_size > self.max_member_bytes:
            return (
                f"archive member too large: {info.file_size:,} bytes uncompressed, above the limit of "
                f"{self.max_member_bytes:,} (a possible zip bomb)"
            )
        ratio = info.file_size / max(1, info.compress_size)
        if ratio > self.max_ratio:
            return (
                f"archive member refused: compression ratio {ratio:,.0f}:1 is above the limit "
                f"{self.max_ratio:,.0f}:1 (a possible zip bomb)"
            )
        return None


def _unsafe_member(name: str) -> str | None:
    """Why a member name cannot name a sample: it would climb out of the archive or start at a root."""
    if name.startswith(("/", "\\")):
        return "absolute path"
    if len(name) > 1 and name[1] == ":" and name[0].isalpha():
        return "drive letter"
    if ".." in name.replace("\\", "/").split("/"):
        return "'..' component"
    return None


class ZipSource(Source):
    """A zip archive read in place: members are decompressed into memory, never onto disk, and
    only within :class:`ArchiveLimits`."""

    kind = "zip"

    def __init__(self, path: Path, limits: ArchiveLimits | None = None):
        super().__init__(str(path))
        self.path = path.resolve()
        self.limits = limits or ArchiveLimits()
        self._local = threading.local()  # one handle per thread: reads seek a shared file
        try:
            zf = self._zip()
        except zipfile.BadZipFile as exc:
            raise DataError(f"{printable(str(path))} is not a readable zip archive ({exc})") from None
        except UnicodeDecodeError:
            raise DataError(
                f"{printable(str(path))} has a member name marked as UTF-8 that is not valid UTF-8; "
                "re-create the archive with a current zip tool"
            ) from None
        self._info = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        self._mtime_ns = self.path.stat().st_mtime_ns
        unsafe = {name: why for name in self._info if (why := _unsafe_member(name))}
        self.samples, ignored = _layout_from_paths(sorted(n for n in self._info if n not in unsafe))
        self.ignored = [Ignored(n, f"unsafe member name ({why}): refused") for n, why in sorted(unsafe.items())] + ignored

    def _zip(self) -> zipfile.ZipFile:
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        return zf

    def reopen(self) -> None:
        self._local = threading.local()

    def read_bytes(self, path: str) -> bytes:
        info = self._info.get(path)
        if info is None:
            raise OSError(f"no member {path!r} in the archive")
        refusal = self.limits.refusal(info)
        if refusal:
            raise OSError(refusal)
        try:
            return self._zip().read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            # A damaged, encrypted or oddly compressed member is one bad file, not a fatal error:
            # OSError is what callers (the cache) report as "cannot read file" and skip.
            raise OSError(f"corrupt or unsupported archive member: {exc}") from exc

    def fingerprint(self, path: str) -> str:
        info = self._info[path]
        return f"zip:{self.path}:{self._mtime_ns}:{path}:{info.CRC:08x}:{info.file_size}"


class ManifestSource(Source):
    """A CSV or JSONL file with ``path`` and ``label`` columns, optional ``split``/``group``, and
    any other columns kept as metadata. Relative paths resolve against the manifest's folder and
    may not leave it."""

    kind = "manifest"

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path.resolve()
        self.base = self.path.parent
        rows = read_manifest(self.path)
        # Every column any row has (JSONL rows may differ), in first-seen order.
        columns = list(dict.fromkeys(k for row in rows for k in row.values))
        self.meta_columns = [c for c in columns if c not in ("path", "label", "split", "group")]
        for row in rows:
            where = f"manifest {printable(str(path))}, row {row.line}"
            rel, label, split, group = (text_value(row.values.get(c), c, where) for c in ("path", "label", "split", "group"))
            if not rel or not label:
                raise DataError(f"{where}: path and label must not be empty")
            self._check_inside(rel, row.line)
            meta = {c: "" if row.values.get(c) is None else str(row.values.get(c)) for c in self.meta_columns}
            self.samples.append(Sample(path=rel, label=label, split=normalize_split(split), group=group or None, meta=meta))

    def _check_inside(self, rel: str, lineno: int) -> None:
        resolved = (self.base / rel).resolve()
        if not resolved.is_relative_to(self.base):
            raise DataError(
                f"manifest {self.path}, row {lineno}: path {rel!r} points outside the manifest's "
                f"folder {self.base}; move the images under that folder or the manifest above them"
            )

    def read_bytes(self, path: str) -> bytes:
        return (self.base / path).read_bytes()

    def fingerprint(self, path: str) -> str:
        return _stat_fingerprint(self.base / path)


# ---------------------------------------------------------------------------- built-in datasets


class BuiltinSource(Source):
    """Datasets that ship with installed packages, so the demo needs no network.

    ``digits``: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), served as 8-bit
    grayscale PNGs so they go through the same decoding path as any user's files.
    """

    kind = "builtin"

    def __init__(self, name: str):
        super().__init__(BUILTIN_PREFIX + name)
        if name not in BUILTINS:
            raise UserError(f"unknown built-in dataset {name!r}; available: {', '.join(BUILTINS)}")
        from sklearn.datasets import load_digits

        digits = load_digits()
        self._images = digits.images  # (n, 8, 8) floats in 0..16
        for i, target in enumerate(digits.target):
            self.samples.append(Sample(f"{int(target)}/{i:04d}.png", str(int(target))))
        self._index = {s.path: i for i, s in enumerate(self.samples)}

    def read_bytes(self, path: str) -> bytes:
        import numpy as np
        from PIL import Image

        pixels = (self._images[self._index[path]] * (255.0 / 16.0)).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buf, format="PNG")
        return buf.getvalue()

    def fingerprint(self, path: str) -> str:
        import sklearn

        return f"{self.uri}:sklearn-{sklearn.__version__}:{path}"


def _stat_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
