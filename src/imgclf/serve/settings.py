"""What one `imgclf serve` is configured with, checked once, and how it reaches worker processes.

uvicorn starts each worker process by importing the app factory, so settings travel through the
environment as JSON (:data:`SETTINGS_ENV`). The API key never travels in that JSON: it is read
from ``IMGCLF_API_KEY`` or from the file ``api_key_file`` names (see :mod:`.security`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import UserError
from ..inference.names import BACKENDS

SETTINGS_ENV = "IMGCLF_SERVE_SETTINGS"
STORE_DIR_NAME = "feedback"  # the default store: RUN/feedback (beside the link when RUN is a `current` link)

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """Everything the service needs besides the API key. Build with :meth:`checked`."""

    run: str  # as given: a `current` symlink is followed again on every check for a new model
    backend: str = "auto"
    store: str | None = None  # None: RUN/feedback (SQLite); or a folder, or a postgresql:// URL
    api_key_file: str | None = None
    protect_predict: bool = False  # predict and explain need the API key too
    top_k: int = 3
    max_upload_bytes: int = 16 * MiB  # a whole request body; larger gets 413
    max_files: int = 32  # images in one predict request
    max_pixels: int = 50_000_000  # per image (a 50 MP phone photo passes), checked before decoding
    max_batch: int = 32  # images the model runs at once
    max_wait_ms: float = 3.0  # how long the first request of a batch waits for others
    keep_images: bool = False  # keep every predicted image, not only unsure ones (review needs those)
    watch_seconds: float = 2.0  # how often to look for a new model at RUN (0: only on /v1/admin/reload)
    drift_window: int = 500
    decode_threads: int = 0  # 0: one per CPU core

    @classmethod
    def checked(cls, **values) -> ServeSettings:
        """Settings from keyword arguments, each checked; a UserError names the first bad one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown serve setting {unknown[0]!r}")
        s = cls(**values)
        if s.backend not in BACKENDS:
            raise UserError(f"unknown backend {s.backend!r}; choose one of {', '.join(BACKENDS)}")
        if not Path(s.run).expanduser().exists():
            raise UserError(f"{s.run} does not exist; give a run directory (or a link to one) to serve")
        _at_least("top_k", s.top_k, 1)
        _at_least("max_upload_bytes", s.max_upload_bytes, 1024)
        _at_least("max_files", s.max_files, 1)
        _at_least("max_pixels", s.max_pixels, 1)
        _at_least("max_batch", s.max_batch, 1)
        _at_least("drift_window", s.drift_window, 1)
        _at_least("decode_threads", s.decode_threads, 0)
        if not 0 <= s.max_wait_ms <= 1000:
            raise UserError(f"max_wait_ms must be between 0 and 1000, not {s.max_wait_ms}")
        if s.watch_seconds < 0:
            raise UserError(f"watch_seconds must be 0 (off) or more, not {s.watch_seconds}")
        if s.api_key_file is not None and not Path(s.api_key_file).expanduser().is_file():
            raise UserError(f"the API key file {s.api_key_file} does not exist")
        return s

    def store_spec(self) -> str:
        """Where the feedback store is: as configured, or ``feedback`` beside the served run.

        When RUN is a symlink (the `current` link to a promoted run), the default store sits beside
        the link, so it stays the same store when the link moves to the next run.
        """
        if self.store:
            return self.store
        run = Path(self.run).expanduser()
        if run.is_symlink():
            return str(run.parent / STORE_DIR_NAME)
        return str(run / STORE_DIR_NAME)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise UserError(f"{SETTINGS_ENV} is not set; start the service with `imgclf serve RUN`")
        return cls.checked(**json.loads(raw))


def _at_least(name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"{name} must be a whole number of at least {low}, not {value!r}")
