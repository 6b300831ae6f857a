"""Kill tests: wait until a training process has written a checkpoint far enough in."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for_checkpoint(proc: subprocess.Popen, run: Path, reached: Callable[[dict], bool], timeout: float, poll: float = 0.01) -> dict:
    """The state of ``run``'s last checkpoint once ``reached(state)`` holds (or what it last was
    when ``timeout`` seconds pass or ``proc`` ends first). Half-written index files read as {}."""
    index, state, deadline = run / "checkpoints" / "last.json", {}, time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = json.loads(index.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        if reached(state):
            break
        time.sleep(poll)
    return state
