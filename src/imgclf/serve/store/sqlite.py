"""The embedded store: SQLite in WAL mode for records, content-addressed image files beside it.

    STORE/feedback.sqlite   (+ its -wal and -shm files while in use)
    STORE/images/ab/cd/<sha256>

Durability: ``synchronous=FULL`` makes every commit fsync the write-ahead log before it returns,
and images are fsynced and renamed into place before the record naming them is committed, so an
acknowledged record and its image survive a SIGKILL of the process (and a power cut).

Concurrency: ONE CONNECTION PER THREAD (created on a thread's first use). Python's sqlite3
connections are not meant to be used by two threads at once, and a single shared connection
behind a lock would make every read wait behind every write's fsync; with one connection each,
WAL lets readers run beside the one writer, and SQLite's own file locks (with ``busy_timeout``)
order writers, whether they are threads here or other processes on the same file. Writes take
the lock up front (``BEGIN IMMEDIATE``), so a transaction never fails half-way upgrading a read lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path

from ...errors import UserError
from .base import Store
from .images import ImageFiles

DB_NAME = "feedback.sqlite"
IMAGES_DIR = "images"
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's transaction to finish


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, root: str | os.PathLike):
        root = Path(root).expanduser()
        if root.exists() and not root.is_dir():
            raise UserError(f"feedback store {root} is a file; give a folder (it holds {DB_NAME} and {IMAGES_DIR}/)")
        if root.is_dir() and not (root / DB_NAME).exists() and any(root.iterdir()):
            raise UserError(
                f"{root} is not empty and holds no {DB_NAME}, so it is not a feedback store; "
                "give a new or empty folder"
            )
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.path = root / DB_NAME
        self.location = str(root)
        self._local = threading.local()
        # Every live thread's connection, so close() reaches them; weak, so that a thread that ends
        # (a thread-per-request server) takes its connection with it instead of leaking a file handle.
        self._held: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._held_lock = threading.Lock()
        self._closed = False
        self._init_schema()
        # After the database exists: a folder holding only images/ would be refused as "not a store".
        self.images = ImageFiles(root / IMAGES_DIR)

    def _connection(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is not None and held.conn is not None:
            return held.conn
        if self._closed:
            raise UserError(f"the feedback store {self.location} is closed")
        try:
            # isolation_level=None: autocommit, so transactions are exactly the BEGIN/COMMIT below.
            # check_same_thread=False only so close() may close it from another thread; it is
            # otherwise used by the thread that made it.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise UserError(f"cannot put {self.path} in WAL mode (got {mode}); is it on a network file system?")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"cannot open the feedback store {self.path}: {exc}") from None
        self._local.held = held = _ThreadConnection(conn)
        with self._held_lock:
            self._held.add(held)
        return conn

    @contextmanager
    def _write(self):
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn.cursor()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self):
        yield self._connection().cursor()

    def _save_images_before(self, images: dict[str, bytes]) -> None:
        for data in images.values():
            self.images.put(data)

    def has_image(self, sha256: str) -> bool:
        return self.images.has(sha256)

    def image(self, sha256: str) -> bytes:
        return self.images.get(sha256)

    def close(self) -> None:
        self._closed = True
        with self._held_lock:
            held = list(self._held)
        for h in held:
            h.close()
        self._local = threading.local()

    def open_connections(self) -> int:
        """How many threads hold a connection now (for tests and diagnostics)."""
        with self._held_lock:
            return sum(1 for h in self._held if h.conn is not None)


class _ThreadConnection:
    """One thread's connection, closed when the thread ends (its thread-local slot is freed) or by close()."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        self.close()
