"""Shared test set-up: every test session gets its own decoded-image cache, never the user's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can `import synth`

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
