"""Find run directories under a folder and read what each one is: status, model, data, epochs,
training time and key metrics.

Status, from what training records:

- ``running``: another process holds the run's writer lock (``.imgclf-lock``) now;
- ``finished``: the last checkpoint reached the end of its plan, or training was stopped on
  purpose (early stopping, a pruned tuning trial): the same test ``imgclf train --resume`` uses;
- ``interrupted``: imgclf started it (its marker is there) but nobody holds the lock and the last
  checkpoint, if any, is short of the end: ``imgclf train --resume RUN`` continues it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError
from ..runs import LOCK, MARKER, Run

# Folders inside a run that hold no runs: skipping them keeps a scan of many runs quick.
_RUN_PARTS = {"checkpoints", "model", "eval", "export", "tensorboard", "mlruns", "mlartifacts", "feedback"}


@dataclass
class RunInfo:
    """One run directory as `imgclf runs` lists it."""

    path: Path
    name: str  # the path relative to the folder listed
    status: str  # running | finished | interrupted
    model: str | None = None
    data: str | None = None
    epochs: int = 0  # epochs finished
    planned_epochs: int | None = None
    train_seconds: float = 0.0  # the epochs' time, summed from metrics.jsonl
    started: str | None = None  # when the run directory was claimed (its marker)
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    final_train_loss: float | None = None
    test_accuracy: float | None = None  # eval/metrics.json, when the run was evaluated on its test split
    config: dict = field(default_factory=dict, repr=False)
    curves: list[dict] = field(default_factory=list, repr=False)  # metrics.jsonl

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        del d["config"], d["curves"]
        return d


def find_runs(folder: str | os.PathLike) -> list[Path]:
    """Run directories at or under ``folder``, sorted by path; not inside a run's own parts
    (checkpoints/, model/, ...) and not through links (a link loop cannot trap the scan)."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise UserError(f"{folder} does not exist")
    if not root.is_dir():
        raise UserError(f"{folder} is not a folder")
    found = []
    for here, dirs, files in os.walk(root):  # os.walk does not follow links to folders by default
        if MARKER in files or _looks_like_run(Path(here), files):
            found.append(Path(here))
            dirs[:] = [d for d in dirs if d not in _RUN_PARTS]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _looks_like_run(here: Path, files: list[str]) -> bool:
    """A run written before run directories had a marker: its config and its epochs."""
    return "config.yaml" in files and "metrics.jsonl" in files


def read_run(path: str | os.PathLike, base: Path | None = None, held: set | None = None) -> RunInfo:
    """What the run at ``path`` is; ``held`` is :func:`held_locks`' answer, when listing many."""
    root = Path(path)
    run = Run(root)
    config = _read_yaml(run.config)
    curves = _read_jsonl(run.metrics)
    last = _read_json(run.checkpoints / "last.json")
    marker = _read_json(root / MARKER)
    info = RunInfo(
        path=root,
        name=str(root.relative_to(base)) if base is not None and root != base else root.name,
        status=run_status(root, last, held),
        model=config.get("model"),
        data=config.get("data"),
        epochs=max((r.get("epoch", 0) for r in curves), default=0),
        planned_epochs=config.get("epochs") if not config.get("time") else None,
        train_seconds=round(sum(float(r.get("epoch_seconds", 0.0)) for r in curves), 1),
        started=marker.get("created"),
        config=config,
        curves=curves,
    )
    monitor = config.get("monitor", "val_accuracy")
    best_epoch = last.get("best_epoch") or _best_epoch(curves, monitor)
    if config.get("weight_averaging") == "lookahead" and curves:  # its final weights are the model, as fit() reports
        best_epoch = curves[-1]["epoch"]
    best = next((r for r in curves if r.get("epoch") == best_epoch), None)
    if best is not None:
        info.best_epoch, info.best_val_accuracy = best_epoch, best.get("val_accuracy")
    if curves:
        info.final_train_loss = curves[-1].get("train_loss")
    evaluation = _read_json(run.eval_dir / "metrics.json")
    if evaluation.get("split", "test") == "test" and isinstance(evaluation.get("accuracy"), int | float):
        info.test_accuracy = float(evaluation["accuracy"])
    return info


def list_runs(folder: str | os.PathLike = "runs") -> list[RunInfo]:
    """Every run under ``folder`` (recursively), read as :func:`read_run` does."""
    base = Path(folder).expanduser()
    held = held_locks()
    return [read_run(p, base, held) for p in find_runs(base)]


def run_status(root: Path, last_checkpoint: dict | None = None, held: set | None = None) -> str:
    """``running``, ``finished`` or ``interrupted`` (see the module's docstring)."""
    if lock_is_held(root / LOCK, held):
        return "running"
    last = last_checkpoint if last_checkpoint is not None else _read_json(root / "checkpoints" / "last.json")
    step, total = last.get("step"), last.get("plan_total")
    if last.get("stopped_early") or (isinstance(step, int) and isinstance(total, int) and step >= total > 0):
        return "finished"
    return "interrupted"


# ------------------------------------------------------------------------------ is a lock held?
#
# Training holds an flock on RUN/.imgclf-lock. Asking by taking the lock for a moment would make a
# training run that starts in that moment fail with "in use", so on Linux the kernel's table of
# held locks (/proc/locks) is read instead, which takes nothing. Elsewhere the lock is probed.


def held_locks() -> set | None:
    """(device, inode) and (pid, inode) of every flock held on this machine, or None where the
    kernel does not list them."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    held = set()
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts or "FLOCK" not in parts:  # a waiter, or a POSIX/OFD lock (not imgclf's)
            continue
        for i, part in enumerate(parts):
            pieces = part.split(":")
            if len(pieces) == 3 and pieces[2].isdigit():
                try:
                    major, minor, inode = int(pieces[0], 16), int(pieces[1], 16), int(pieces[2])
                except ValueError:
                    continue
                held.add(("dev", os.makedev(major, minor), inode))
                if i > 0 and parts[i - 1].isdigit():
                    held.add(("pid", int(parts[i - 1]), inode))
                break
    return held


def lock_is_held(lock: Path, held: set | None = None) -> bool:
    """Whether some process holds the flock on ``lock`` now."""
    try:
        st = lock.stat()
    except OSError:
        return False
    held = held_locks() if held is None else held
    if held is not None:
        if ("dev", st.st_dev, st.st_ino) in held:
            return True
        # On overlay file systems the kernel names the underlying device: match the inode and the
        # holder's pid, which the holder wrote into the lock file.
        pid = _read_json(lock).get("pid")
        return isinstance(pid, int) and ("pid", pid, st.st_ino) in held
    return _probe(lock)


def _probe(lock: Path) -> bool:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): training there takes no lock either
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken on it
    return False


# ---------------------------------------------------------------------------------- reading files


def _best_epoch(curves: list[dict], monitor: str) -> int | None:
    scored = [r for r in curves if isinstance(r.get(monitor), int | float)]
    if not scored:
        return None
    pick = min if monitor == "val_loss" else max
    return pick(scored, key=lambda r: r[monitor])["epoch"]


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_jsonl(path: Path) -> list[dict]:
    """metrics.jsonl's lines; a line cut short by a crash is skipped, not fatal."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows
