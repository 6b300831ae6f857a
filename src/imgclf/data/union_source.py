"""Several sources read as one dataset, described by a small JSON file (``imgclf train data.json``).

    {"format": "imgclf-union", "version": 1,
     "sources": [{"data": "builtin:digits"},
                 {"data": "feedback/manifest.csv", "prefix": "feedback:"}]}

Each part is anything :func:`~.sources.open_source` opens (another union file too); a relative
``data`` path is relative to the JSON file's folder, so a folder holding the file and its parts
can be moved as a whole. Every sample keeps its part's label, split, group and metadata, and is
read by its own part's reader; its path gets the part's ``prefix`` (none by default), which keeps
paths unique across parts, and a part without a prefix keeps the paths it has on its own (a
run's ``splits.csv`` recorded for that part still names its samples). `imgclf retrain` writes
one of these for "the old run's data plus the exported feedback".
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .sources import Source, open_source
from .walk import printable

FORMAT = "imgclf-union"
VERSION = 1
MAX_DEPTH = 16  # unions of unions (a retrain of a retrained run) nest; a cycle stops here


class UnionSource(Source):
    """The samples of several sources, each read by the source it came from."""

    kind = "union"

    def __init__(self, path: Path, _depth: int = 0):
        super().__init__(str(path))
        self.path = Path(path).resolve()
        where = printable(str(path))
        if _depth >= MAX_DEPTH:
            raise DataError(f"{where}: union files nest more than {MAX_DEPTH} deep (does one include itself?)")
        parts = _read_parts(self.path, where)
        self.parts: list[tuple[str, Source]] = []
        self._owner: dict[str, tuple[Source, str]] = {}  # sample path -> (its source, its path there)
        for prefix, spec in parts:
            source = _open_part(spec, self.path.parent, _depth)
            self.parts.append((prefix, source))
            for sample in source.samples:
                name = prefix + sample.path
                if name in self._owner:
                    raise DataError(f"{where}: two parts both have an image named {printable(name)}; give one part a prefix")
                self._owner[name] = (source, sample.path)
                sample.path = name  # the part's own Sample objects: each part is opened for this union alone
                self.samples.append(sample)
            self.ignored += source.ignored
            self.meta_columns += [c for c in source.meta_columns if c not in self.meta_columns]
        for sample in self.samples:  # every sample has every column, as in one manifest
            for column in self.meta_columns:
                sample.meta.setdefault(column, "")
        if not self.samples:
            raise DataError(f"no images found in {where}")

    def read_bytes(self, path: str) -> bytes:
        source, inner = self._part_of(path)
        return source.read_bytes(inner)

    def fingerprint(self, path: str) -> str:
        source, inner = self._part_of(path)
        return source.fingerprint(inner)

    def reopen(self) -> None:
        for _, source in self.parts:
            source.reopen()

    def describe(self) -> dict:
        return {**super().describe(), "parts": [{"prefix": prefix, **source.describe()} for prefix, source in self.parts]}

    def _part_of(self, path: str) -> tuple[Source, str]:
        try:
            return self._owner[path]
        except KeyError:
            raise OSError(f"no image {path!r} in {self.uri}") from None


def write_union(path: Path, parts: list[dict]) -> None:
    """Write a union file; ``parts`` are ``{"data": spec, "prefix": text}`` (prefix optional)."""
    from ..runs import write_json

    write_json(path, {"format": FORMAT, "version": VERSION, "sources": parts})


def is_union_file(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _read_parts(path: Path, where: str) -> list[tuple[str, str]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{where} is not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{where} is not a dataset union (a JSON file with \"format\": \"{FORMAT}\")")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise DataError(f"{where} has union format version {doc.get('version')!r}; this imgclf reads up to {VERSION}")
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources:
        raise DataError(f"{where}: \"sources\" must be a non-empty list")
    parts = []
    for i, entry in enumerate(sources, 1):
        spec = entry.get("data") if isinstance(entry, dict) else None
        prefix = entry.get("prefix", "") if isinstance(entry, dict) else None
        if not isinstance(spec, str) or not spec or not isinstance(prefix, str):
            raise DataError(f"{where}: source {i} needs \"data\" (text) and an optional \"prefix\" (text)")
        parts.append((prefix, spec))
    return parts


def _open_part(spec: str, base: Path, depth: int) -> Source:
    if spec.startswith("builtin:"):
        return open_source(spec)
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base / path
    if is_union_file(path) and path.is_file():
        return UnionSource(path, depth + 1)
    return open_source(path)
