"""The decoded-image cache: every image is decoded once, then read as uint8 pixels from disk.

A store holds images at one size under one preprocessing (``Preprocess.fit``): a raw,
append-only file of ``size x size x 3`` uint8 rows, memory-mapped for reading, and a SQLite
index from an image's content key to its row (or to the reason it could not be decoded). Keys
come from content (a zip member's CRC-32, else a hash of the file's bytes), so the same images
reached through another path, folder or run hit the cache, and a changed or added file costs
exactly one decode. Memory does not grow with the dataset: readers touch rows through the page
cache.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..progress import progress_iter
from .decode import DecodeError
from .preprocess import Preprocess
from .sources import Source

# Bump when decoding or fitting changes the pixels it produces. 2: 32-bit integer and float
# images are scaled by their real range, and short PNGs are refused as truncated.
FORMAT_VERSION = 2
_READ_ERROR = "read error"  # sentinel: a transient failure, not cached
PROCESS_POOL_MIN = 2000  # below this many images, starting worker processes costs more than it saves


def default_cache_dir() -> Path:
    env = os.environ.get("IMGCLF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "imgclf"


def storable(fingerprint: str) -> str:
    """``fingerprint`` as text SQLite can store. A path from a non-UTF-8 file name carries lone
    surrogates, which no UTF-8 encoder accepts; such a fingerprint becomes the base64 of its bytes,
    under a prefix no source uses, so two different files never share a key."""
    try:
        fingerprint.encode("utf-8")
        return fingerprint
    except UnicodeEncodeError:
        return "fsbytes:" + base64.b64encode(fingerprint.encode("utf-8", "surrogateescape")).decode("ascii")


def content_key(data: bytes) -> str:
    """The cache key of an image: a hash of its encoded bytes."""
    return "blake2b:" + hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class CacheResult:
    pixels: np.ndarray  # the store's rows, memory-mapped: (rows, size, size, 3) uint8
    rows: np.ndarray  # row of each requested sample, -1 where it failed to decode
    failures: dict[int, str]  # sample position -> reason
    decoded: int  # images decoded in this call (cache misses)


class PixelStore:
    def __init__(self, preprocess: Preprocess, cache_dir: str | os.PathLike | None = None):
        self.preprocess = preprocess
        p = preprocess
        name = f"v{FORMAT_VERSION}-{p.img_size}px-{p.resize}-{p.interpolation}"
        self.dir = Path(cache_dir or default_cache_dir()) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_path = self.dir / "pixels.u8"
        self.row_bytes = p.img_size * p.img_size * 3
        self._db = sqlite3.connect(self.dir / "index.sqlite", timeout=600)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, row INTEGER, reason TEXT)"
        )
        # fingerprint (path, size, mtime / zip CRC) -> content key, so warm runs need not read files
        self._db.execute("CREATE TABLE IF NOT EXISTS fingerprints (fp TEXT PRIMARY KEY, key TEXT)")
        self._db.commit()

    @contextmanager
    def _locked(self):
        # Two processes filling the same store would both append; the lock serialises them.
        with open(self.dir / "lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _select_in(self, query: str, keys: list[str]) -> list[tuple]:
        """Rows of ``query`` (ending in ``IN``) for ``keys``, chunked under SQLite's parameter limit."""
        unique, out = list(dict.fromkeys(keys)), []
        for i in range(0, len(unique), 900):
            chunk = unique[i : i + 900]
            out += self._db.execute(f"{query} ({','.join('?' * len(chunk))})", chunk).fetchall()
        return out

    def _lookup(self, keys: list[str]) -> dict[str, tuple[int | None, str | None]]:
        return {key: (row, reason) for key, row, reason in self._select_in("SELECT key, row, reason FROM images WHERE key IN", keys)}

    def _map(self) -> np.ndarray:
        size = self.preprocess.img_size
        n = self.data_path.stat().st_size // self.row_bytes if self.data_path.exists() else 0
        if n == 0:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        return np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=(n, size, size, 3))

    def get(
        self,
        source: Source,
        paths: list[str],
        *,
        workers: int | None = None,
        description: str = "decoding images",
    ) -> CacheResult:
        """Rows for ``paths`` of ``source``, decoding (in parallel) only those not cached yet.

        Content keys are found through each file's cheap fingerprint (path, size, mtime; or a zip
        member's CRC) when it was seen before, so a warm run reads no image bytes at all.
        """
        workers = workers or min(8, (os.cpu_count() or 1) + 2)
        unreadable: dict[int, str] = {}

        def fingerprint(i_path):
            i, path = i_path
            try:
                return storable(source.fingerprint(path))
            except OSError as exc:
                unreadable[i] = f"cannot read file ({exc.strerror or exc})"
                return None

        def hash_file(path):
            try:
                return content_key(source.read_bytes(path))
            except OSError as exc:
                return OSError(f"cannot read file ({exc.strerror or exc})")

        with ThreadPoolExecutor(workers) as pool:
            fps = list(pool.map(fingerprint, enumerate(paths)))
            keys = self._keys_for([f for f in fps if f is not None])
            todo = [i for i, f in enumerate(fps) if f is not None and f not in keys]
            hashed = progress_iter(
                pool.map(hash_file, [paths[i] for i in todo]), total=len(todo), description="hashing images"
            )
            new = {}
            for i, key in zip(todo, hashed):
                if isinstance(key, OSError):
                    unreadable[i] = str(key)
                else:
                    new[fps[i]] = key
            if new:
                self._db.executemany("INSERT OR REPLACE INTO fingerprints VALUES (?, ?)", list(new.items()))
                self._db.commit()
                keys.update(new)
            # Unreadable files have no content to key on: they are reported, never cached, so
            # fixing the file (or its permissions) is enough for the next run to use it.
            key_of = [None if i in unreadable or fps[i] is None else keys[fps[i]] for i in range(len(paths))]
            with self._locked():
                known = self._lookup([k for k in key_of if k is not None])
                first_path: dict[str, str] = {}
                for k, p in zip(key_of, paths):
                    if k is not None and k not in known:
                        first_path.setdefault(k, p)
                if first_path:
                    known.update(self._decode(source, list(first_path.items()), pool, description))
        rows = np.full(len(paths), -1, dtype=np.int64)
        failures: dict[int, str] = {}
        for i, k in enumerate(key_of):
            row, reason = (None, unreadable.get(i, "cannot read file")) if k is None else known.get(k, (None, "cannot read file"))
            if row is None:
                failures[i] = reason or "unreadable"
            else:
                rows[i] = row
        return CacheResult(self._map(), rows, failures, len(first_path))

    def _keys_for(self, fps: list[str]) -> dict[str, str]:
        return dict(self._select_in("SELECT fp, key FROM fingerprints WHERE fp IN", fps))

    def _decode(self, source, items, pool, description):
        """Decode ``items`` (key, path) into new rows at the end of the store."""
        start = self.data_path.stat().st_size // self.row_bytes if self.data_path.exists() else 0
        size = self.preprocess.img_size
        with open(self.data_path, "ab") as fh:
            fh.truncate((start + len(items)) * self.row_bytes)
        out = np.memmap(
            self.data_path, dtype=np.uint8, mode="r+",
            offset=start * self.row_bytes, shape=(len(items), size, size, 3),
        )  # fmt: skip

        if len(items) >= PROCESS_POOL_MIN and (os.cpu_count() or 1) > 1:
            reasons = self._decode_in_processes(source, items, start, description)
        else:

            def work(i_item):
                i, (_key, path) = i_item
                return _decode_into(out, i, source, path, self.preprocess)

            reasons = list(
                progress_iter(pool.map(work, enumerate(items)), total=len(items), description=description)
            )
        out.flush()
        result, records = {}, []
        for i, ((key, _path), reason) in enumerate(zip(items, reasons)):
            row = None if reason else start + i
            result[key] = (row, "cannot read file" if reason is _READ_ERROR else reason)
            if reason is not _READ_ERROR:
                records.append((key, row, reason))
        self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)", records)
        self._db.commit()
        return result

    def _decode_in_processes(self, source, items, start, description) -> list:
        """Decoding small images is dominated by Python per-image work, which threads serialise on
        the GIL; worker processes (one per core) each write their rows straight into the store."""
        size = self.preprocess.img_size
        chunk = 256
        chunks = [list(enumerate(items))[i : i + chunk] for i in range(0, len(items), chunk)]
        ctx = multiprocessing.get_context("fork")  # workers inherit the source: nothing to pickle
        args = (source, self.preprocess, str(self.data_path), start * self.row_bytes, (len(items), size, size, 3))
        reasons: list = [None] * len(items)
        with ProcessPoolExecutor(os.cpu_count(), mp_context=ctx, initializer=_init_worker, initargs=args) as procs:
            done = progress_iter(
                (r for part in procs.map(_decode_chunk, [[(i, p) for i, (_k, p) in c] for c in chunks]) for r in part),
                total=len(items), description=description,
            )  # fmt: skip
            for i, reason in done:
                reasons[i] = reason
        return reasons

    def close(self):
        self._db.close()


def _decode_into(out: np.ndarray, i: int, source: Source, path: str, preprocess: Preprocess):
    """Decode one image into row ``i`` of ``out``; returns None or the reason it failed."""
    try:
        out[i] = preprocess.load(source.read_bytes(path))
        return None
    except DecodeError as exc:
        return exc.reason
    except OSError:
        return _READ_ERROR  # the file vanished or changed after hashing: retry next run


_worker: dict = {}


def _init_worker(source: Source, preprocess: Preprocess, data_path: str, offset: int, shape: tuple) -> None:
    source.reopen()  # file handles inherited from the parent share its file offsets
    _worker.update(
        source=source, preprocess=preprocess,
        out=np.memmap(data_path, dtype=np.uint8, mode="r+", offset=offset, shape=shape),
    )  # fmt: skip


def _decode_chunk(chunk: list[tuple[int, str]]) -> list[tuple[int, str | None]]:
    w = _worker
    result = [(i, _decode_into(w["out"], i, w["source"], path, w["preprocess"])) for i, path in chunk]
    w["out"].flush()
    return result


def clear_cache(cache_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Delete every store under the cache folder; returns (folder, bytes freed)."""
    import shutil

    root = Path(cache_dir or default_cache_dir())
    freed = 0
    if root.exists():
        freed = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        shutil.rmtree(root)
    return root, freed
