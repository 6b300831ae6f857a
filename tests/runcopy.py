"""A private copy of a shared trained run, for tests that write into a run."""

from __future__ import annotations

from pathlib import Path


def copy_run(run: Path, dest: Path) -> Path:
    """A private copy of a run directory (without checkpoints) that a test may modify."""
    import shutil

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints"))
    return dest
