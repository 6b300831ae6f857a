"""The shared store: PostgreSQL through psycopg 3, for several servers behind one database.

Images are kept in the database (``images``: sha256 -> bytea), inserted in the same transaction
as the record that names them, so every server sees every image and a record never names a
missing one.

Concurrency: A BOUNDED CONNECTION POOL (psycopg_pool), not a connection per thread: an async app's
worker-thread pool (40 threads in anyio by default) times several worker processes times several
servers would exceed PostgreSQL's default of 100 connections. A psycopg connection serialises its
own use, and the pool hands each thread its own for the length of one transaction. The server
orders concurrent transactions; conditional updates (see :meth:`Store.decide`) decide races.

A schema other than ``public`` is chosen in the URL: ``...?options=-csearch_path%3Dmyschema``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ...errors import UserError
from .base import Store
from .records import check_sha256, sha256_hex

# pg_advisory_xact_lock key (any constant): serialises schema creation between servers starting at once,
# since concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's catalogue.
_SCHEMA_LOCK_KEY = 0x696D67636C66
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 30  # how long a thread waits for a free connection before it fails


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str, *, max_connections: int = 8):
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise UserError("a PostgreSQL store needs psycopg 3: pip install 'psycopg[binary,pool]'") from None
        self.location = _redacted(url)
        try:
            # One plain connection first: a wrong password or host is reported with the server's reason.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot connect to the feedback store {self.location}: {reason}") from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            timeout=POOL_TIMEOUT_S,
            check=ConnectionPool.check_connection,  # a server restart does not break the store for good
            open=False,
            name="imgclf-feedback-store",
        )
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 3)
        try:
            self._init_schema()
        except BaseException:
            self._pool.close()
            raise

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _write(self):
        with self._pool.connection() as conn, conn.transaction():
            yield conn.cursor()

    @contextmanager
    def _read(self):
        with self._pool.connection() as conn:
            yield conn.cursor()

    def _lock_schema(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))

    def _save_images_within(self, cur, images: dict[str, bytes]) -> None:
        for sha, data in images.items():
            cur.execute(
                "INSERT INTO images (sha256, data, created) VALUES (%s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                (sha, data, time.time()),
            )

    def has_image(self, sha256: str) -> bool:
        sha256 = check_sha256(sha256)
        with self._read() as cur:
            cur.execute("SELECT 1 FROM images WHERE sha256 = %s", (sha256,))
            return cur.fetchone() is not None

    def image(self, sha256: str) -> bytes:
        sha256 = check_sha256(sha256)
        with self._read() as cur:
            cur.execute("SELECT data FROM images WHERE sha256 = %s", (sha256,))
            row = cur.fetchone()
        if row is None:
            raise UserError(f"image {sha256} is not in the store")
        data = bytes(row[0])
        if sha256_hex(data) != sha256:
            raise UserError(f"image {sha256} in {self.location} is damaged (its content no longer matches its digest)")
        return data

    def close(self) -> None:
        self._pool.close()


def _redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "postgresql://(unparseable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', 'localhost')}{port}/{parts.get('dbname', '')}"
