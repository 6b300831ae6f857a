"""Shared test set-up: every test session gets its own decoded-image cache, never the user's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `import synth` and `import runcopy`

from runcopy import copy_run  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_ZIP = SHARED_DATA / "cifar10-jpg.zip"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("imgclf-cache")
    old = os.environ.get("IMGCLF_CACHE_DIR")
    os.environ["IMGCLF_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("IMGCLF_CACHE_DIR", None)
    else:
        os.environ["IMGCLF_CACHE_DIR"] = old


@pytest.fixture
def cifar_zip() -> Path:
    if not CIFAR_ZIP.exists():
        pytest.skip(f"shared CIFAR-10 archive not found at {CIFAR_ZIP}")
    return CIFAR_ZIP


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A small model trained once per session on ``builtin:digits`` (about 97% test accuracy).

    Shared by evaluation, explanation and export tests: treat it as read-only and use
    :func:`copy_run` for tests that write into a run (evaluate, export, calibration).
    """
    import imgclf

    out = tmp_path_factory.mktemp("digits-run") / "run"
    imgclf.train("builtin:digits", out=out, model="simple_cnn", epochs=6, img_size=32, seed=0)
    return out


@pytest.fixture
def digits_run_copy(digits_run, tmp_path) -> Path:
    return copy_run(digits_run, tmp_path / "run")
