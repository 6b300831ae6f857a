"""Content-addressed image files: ``<root>/ab/cd/abcd...`` named by the SHA-256 of their bytes.

The name is computed here from the bytes, never taken from a client, so nothing a client sends
decides a filesystem path; :func:`~.records.check_sha256` guards the read side. Identical uploads
share one file, and a file, once renamed into place, is never rewritten.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ...errors import UserError
from .records import check_sha256, sha256_hex


class ImageFiles:
    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        sha256 = check_sha256(sha256)
        # Two levels of 256 folders keep any one directory small (a million images: ~15 per folder).
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (temp name, fsync, rename, fsync the folder); return its SHA-256.

        Callers commit the record naming the image only after this returns, so a crash at any
        point leaves either no record or a record whose image is complete.
        """
        sha = sha256_hex(data)
        final = self.path(sha)
        if final.exists():
            return sha
        final.parent.mkdir(parents=True, exist_ok=True)
        # Unique per writer: two processes storing the same bytes at once each rename a complete copy.
        tmp = final.with_name(f".{sha}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()  # our own half-written temp file, inside the store
        _fsync_dir(final.parent)  # the rename itself survives power loss, not only a killed process
        return sha

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"image {sha256} is not in the store") from None
        if sha256_hex(data) != sha256:
            raise UserError(f"image file {path} is damaged (its content no longer matches its name)")
        return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
