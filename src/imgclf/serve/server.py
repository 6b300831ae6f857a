"""`imgclf serve`: check everything a person can get wrong, then run the app under uvicorn.

With ``workers`` > 1, uvicorn starts that many processes (spawned, each importing the app factory
:func:`imgclf.serve.app.app_from_env`); they share the listening socket, the feedback store and a
Prometheus folder (``PROMETHEUS_MULTIPROC_DIR``) set here BEFORE any worker starts, so
``/metrics`` adds up every worker's counts.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ..errors import UserError
from .security import API_KEY_ENV, new_api_key, read_api_key
from .settings import SETTINGS_ENV, ServeSettings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's name; metrics.py reads the same variable
GRACEFUL_SHUTDOWN_SECONDS = 30


def serve(
    run: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "auto",
    workers: int = 1,
    store: str | None = None,
    api_key: str | None = None,
    api_key_file: str | os.PathLike | None = None,
    protect_predict: bool = False,
    top_k: int = 3,
    max_upload_mb: float = 16,
    max_batch: int = 32,
    max_wait_ms: float = 3.0,
    keep_images: bool = False,
    watch_seconds: float = 2.0,
    log_level: str = "info",
) -> None:
    """Serve the model of ``run`` (a run directory, or a `current` link to the promoted one) over
    HTTP until interrupted. See ``imgclf serve --help`` for each option.

    ``api_key`` (or ``IMGCLF_API_KEY``, or the first line of ``api_key_file``) guards feedback,
    review and admin endpoints (and predict with ``protect_predict``); without one, a random key
    is made up and printed. ``store``: a folder (SQLite) or a ``postgresql://`` URL; default
    RUN/feedback. Blocks; raises UserError before starting when something is wrong.
    """
    import uvicorn

    if not isinstance(workers, int) or workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {port}")
    settings = ServeSettings.checked(
        run=str(run), backend=backend, store=store, api_key_file=str(api_key_file) if api_key_file else None,
        protect_predict=protect_predict, top_k=top_k, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_batch=max_batch, max_wait_ms=max_wait_ms, keep_images=keep_images, watch_seconds=watch_seconds,
    )  # fmt: skip
    key, made_up = _resolve_key(api_key, settings.api_key_file)
    version = _check_model_and_store(settings)

    os.environ[SETTINGS_ENV] = settings.to_env()
    if key is not None and settings.api_key_file is None:
        os.environ[API_KEY_ENV] = key  # workers inherit it; a key file is read by each worker instead
    with ExitStack() as stack:
        if workers > 1:
            _prepare_multiprocess_metrics(stack)
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        print(f"imgclf: serving {version} from {run} at {url} ({workers} worker{'s' if workers > 1 else ''}); "
              f"store: {_shown_store(settings)}", file=sys.stderr)  # fmt: skip
        if made_up:
            print(f"imgclf: feedback, review and admin need the API key {key} "
                  f"(choose your own with {API_KEY_ENV} or --api-key-file)", file=sys.stderr)  # fmt: skip
        uvicorn.run(
            "imgclf.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level,
            log_config=_log_config(), server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )  # fmt: skip


def _resolve_key(api_key: str | None, api_key_file: str | None) -> tuple[str, bool]:
    if api_key is not None and api_key_file is not None:
        raise UserError("give the API key either directly or as a file, not both")
    if api_key is not None:
        os.environ[API_KEY_ENV] = api_key
        return read_api_key(None), False  # checked like one from the environment
    key = read_api_key(api_key_file)
    if key is not None:
        return key, False
    return new_api_key(), True


def _check_model_and_store(settings: ServeSettings) -> str:
    """Load the model and open the store once here, so a mistake is one sentence now rather than
    workers that start and never become ready. Returns the model version."""
    from .loaded_model import LoadedModel
    from .store import open_store

    model = LoadedModel(settings)  # first: a mistyped run must not leave an empty store behind
    try:
        with open_store(settings.store_spec()):
            pass
        return model.version
    finally:
        model.retire(timeout=5)


def _prepare_multiprocess_metrics(stack: ExitStack) -> None:
    """A fresh, empty folder for the workers' metric files: prometheus-client requires one per start
    (old files would add a previous run's counts). A folder the user named must already be empty."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        if not folder.is_dir():
            raise UserError(f"{MULTIPROC_ENV}={given} is not a folder")
        if any(folder.iterdir()):
            raise UserError(f"{MULTIPROC_ENV}={given} is not empty; empty it (or unset it) before starting the server")
        return
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="imgclf-metrics-"))
    os.environ[MULTIPROC_ENV] = folder
    stack.callback(os.environ.pop, MULTIPROC_ENV, None)


def _shown_store(settings: ServeSettings) -> str:
    spec = settings.store_spec()
    if spec.startswith(("postgresql://", "postgres://")):
        return spec.split("@")[-1] if "@" in spec else "postgresql"  # never print a password
    return spec


def _log_config() -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["imgclf"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
