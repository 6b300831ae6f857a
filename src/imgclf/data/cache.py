"""The decoded-image cache: every image is decoded once, then read as uint8 pixels from disk.

A store holds images at one size under one preprocessing (``Preprocess.fit``: size, resize mode,
interpolation, channels, and the letterbox fill): a raw, append-only file of
``size x size x channels`` uint8 rows, memory-mapped for reading, and a SQLite index from an
image's content key to its row (or to the reason it could not be decoded) and to its perceptual
hashes (:mod:`.near_duplicates`), computed from the same decoded image in the same pass. Keys
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
from .decode import DecodeError, decode_rgb
from .near_duplicates import hash_thumbnails, thumbnail, to_signed, to_unsigned
from .preprocess import Preprocess
from .sources import Source

# Bump when decoding or fitting changes the pixels it produces, or the store what it records.
# 2: 32-bit integer and float images are scaled by their real range, and short PNGs are refused
# as truncated. 3: each image's perceptual hashes are recorded beside its row.
FORMAT_VERSION = 3
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


def store_name(preprocess: Preprocess) -> str:
    """The folder of the store for ``preprocess``: everything that changes the stored pixels."""
    p = preprocess
    name = f"v{FORMAT_VERSION}-{p.img_size}px-{p.resize}-{p.interpolation}"
    if p.channels != 3:
        name += f"-{p.channels}ch"
    if p.resize == "letterbox":
        name += "-fill" + "_".join(str(v) for v in p.fill)  # the padding colour comes from the mean
    return name


@dataclass
class CacheResult:
    pixels: np.ndarray  # the store's rows, memory-mapped: (rows, size, size, channels) uint8
    rows: np.ndarray  # row of each requested sample, -1 where it failed to decode
    failures: dict[int, str]  # sample position -> reason
    decoded: int  # images decoded in this call (cache misses)
    phash: np.ndarray | None = None  # per sample, uint64 (near_duplicates); 0 where ``hashed`` is False
    dhash: np.ndarray | None = None
    hashed: np.ndarray | None = None  # per sample: decoded and large enough to hash


class PixelStore:
    def __init__(self, preprocess: Preprocess, cache_dir: str | os.PathLike | None = None):
        self.preprocess = preprocess
        self.dir = Path(cache_dir or default_cache_dir()) / store_name(preprocess)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_path = self.dir / "pixels.u8"
        self.shape = preprocess.shape
        self.row_bytes = int(np.prod(self.shape))
        self._db = sqlite3.connect(self.dir / "index.sqlite", timeout=600)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, row INTEGER, reason TEXT)"
        )
        # fingerprint (path, size, mtime / zip CRC) -> content key, so warm runs need not read files
        self._db.execute("CREATE TABLE IF NOT EXISTS fingerprints (fp TEXT PRIMARY KEY, key TEXT)")
        # perceptual hashes of each decoded image (NULL: too small to hash), as signed 64-bit integers
        self._db.execute("CREATE TABLE IF NOT EXISTS hashes (key TEXT PRIMARY KEY, phash INTEGER, dhash INTEGER)")
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
        n = self.data_path.stat().st_size // self.row_bytes if self.data_path.exists() else 0
        if n == 0:
            return np.zeros((0, *self.shape), dtype=np.uint8)
        return np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=(n, *self.shape))

    def _hashes(self, key_of: list[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pHash, dHash, hashed) of each key, uint64 arrays and a mask."""
        found = {k: (p, d) for k, p, d in self._select_in("SELECT key, phash, dhash FROM hashes WHERE key IN", [k for k in key_of if k])}
        phash, dhash = np.zeros(len(key_of), dtype=np.uint64), np.zeros(len(key_of), dtype=np.uint64)
        hashed = np.zeros(len(key_of), dtype=bool)
        for i, k in enumerate(key_of):
            p, d = found.get(k, (None, None)) if k else (None, None)
            if p is not None:
                phash[i], dhash[i], hashed[i] = to_unsigned(p), to_unsigned(d), True
        return phash, dhash, hashed

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
        phash, dhash, hashed = self._hashes([k if rows[i] >= 0 else None for i, k in enumerate(key_of)])
        return CacheResult(self._map(), rows, failures, len(first_path), phash, dhash, hashed)

    def _keys_for(self, fps: list[str]) -> dict[str, str]:
        return dict(self._select_in("SELECT fp, key FROM fingerprints WHERE fp IN", fps))

    def _decode(self, source, items, pool, description):
        """Decode ``items`` (key, path) into new rows at the end of the store."""
        start = self.data_path.stat().st_size // self.row_bytes if self.data_path.exists() else 0
        with open(self.data_path, "ab") as fh:
            fh.truncate((start + len(items)) * self.row_bytes)
        out = np.memmap(
            self.data_path, dtype=np.uint8, mode="r+",
            offset=start * self.row_bytes, shape=(len(items), *self.shape),
        )  # fmt: skip

        if len(items) >= PROCESS_POOL_MIN and (os.cpu_count() or 1) > 1:
            reasons = self._decode_in_processes(source, items, start, description)
        else:

            def work(i_item):
                i, (_key, path) = i_item
                return _decode_into(out, i, source, path, self.preprocess)

            reasons = _with_hashes(list(
                progress_iter(pool.map(work, enumerate(items)), total=len(items), description=description)
            ))
        out.flush()
        result, records, hashes = {}, [], []
        for i, ((key, _path), (reason, hashed)) in enumerate(zip(items, reasons)):
            row = None if reason else start + i
            # == rather than is: reasons from worker processes arrive as copies
            result[key] = (row, "cannot read file" if reason == _READ_ERROR else reason)
            if reason != _READ_ERROR:
                records.append((key, row, reason))
            if row is not None:
                hashes.append((key, *((to_signed(hashed[0]), to_signed(hashed[1])) if hashed else (None, None))))
        self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)", records)
        self._db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)", hashes)
        self._db.commit()
        return result

    def _decode_in_processes(self, source, items, start, description) -> list:
        """Decoding small images is dominated by Python per-image work, which threads serialise on
        the GIL; worker processes (one per core) each write their rows straight into the store."""
        chunk = 256
        chunks = [list(enumerate(items))[i : i + chunk] for i in range(0, len(items), chunk)]
        ctx = multiprocessing.get_context("fork")  # workers inherit the source: nothing to pickle
        args = (source, self.preprocess, str(self.data_path), start * self.row_bytes, (len(items), *self.shape))
        reasons: list = [None] * len(items)
        with ProcessPoolExecutor(os.cpu_count(), mp_context=ctx, initializer=_init_worker, initargs=args) as procs:
            done = progress_iter(
                (r for part in procs.map(_decode_chunk, [[(i, p) for i, (_k, p) in c] for c in chunks]) for r in part),
                total=len(items), description=description,
            )  # fmt: skip
            for i, outcome in done:
                reasons[i] = outcome
        return reasons

    def close(self):
        self._db.close()


def _decode_into(out: np.ndarray, i: int, source: Source, path: str, preprocess: Preprocess) -> tuple[str | None, np.ndarray | None]:
    """Decode one image into row ``i`` of ``out``; returns (None or the reason it failed, the
    thumbnail its perceptual hashes come from, or None). This is ``preprocess.load`` in its two
    steps, so the thumbnail shows the whole decoded image, before cropping or resizing."""
    try:
        img = decode_rgb(source.read_bytes(path), draft_size=preprocess.draft_size)
        out[i] = preprocess.fit(img)
        return None, thumbnail(img)
    except DecodeError as exc:
        return exc.reason, None
    except OSError:
        return _READ_ERROR, None  # the file vanished or changed after hashing: retry next run


def _with_hashes(outcomes: list[tuple[str | None, np.ndarray | None]]) -> list[tuple[str | None, tuple[int, int] | None]]:
    """(reason, thumbnail) outcomes -> (reason, (pHash, dHash) or None), hashed in one vectorised call."""
    have = [i for i, (_, thumb) in enumerate(outcomes) if thumb is not None]
    hashes: dict[int, tuple[int, int]] = {}
    if have:
        phash, dhash = hash_thumbnails(np.stack([outcomes[i][1] for i in have]))
        hashes = {i: (int(p), int(d)) for i, p, d in zip(have, phash, dhash)}
    return [(reason, hashes.get(i)) for i, (reason, _) in enumerate(outcomes)]


_worker: dict = {}


def _init_worker(source: Source, preprocess: Preprocess, data_path: str, offset: int, shape: tuple) -> None:
    source.reopen()  # file handles inherited from the parent share its file offsets
    _worker.update(
        source=source, preprocess=preprocess,
        out=np.memmap(data_path, dtype=np.uint8, mode="r+", offset=offset, shape=shape),
    )  # fmt: skip


def _decode_chunk(chunk: list[tuple[int, str]]) -> list[tuple[int, tuple]]:
    w = _worker
    outcomes = _with_hashes([_decode_into(w["out"], i, w["source"], path, w["preprocess"]) for i, path in chunk])
    w["out"].flush()
    return [(i, outcome) for (i, _path), outcome in zip(chunk, outcomes)]


def clear_cache(cache_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Delete every store under the cache folder; returns (folder, bytes freed)."""
    import shutil

    root = Path(cache_dir or default_cache_dir())
    freed = 0
    if root.exists():
        freed = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        shutil.rmtree(root)
    return root, freed
