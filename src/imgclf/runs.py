"""The run directory: the unit of exchange between train, evaluate, predict, export and serve.

    runs/<name>/
      config.yaml  data_report.json  splits.csv  metrics.jsonl
      model/       model.safetensors + model.json (the deployable bundle)
      checkpoints/ eval/ export/

Everything here is plain files; this module knows paths, how to write them safely, and who may
write a run directory (a marker says imgclf made it; a lock says which process writes it now).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ._version import __version__
from .errors import UserError

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None


@dataclass(frozen=True)
class Run:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_report(self) -> Path:
        return self.root / "data_report.json"

    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def read_config(self) -> dict:
        if not self.config.exists():
            return {}
        return yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]


def open_run(path: str | os.PathLike) -> Run:
    """A run directory that holds a trained model, or a UserError saying what is missing."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"run directory {path} does not exist")
    if not root.is_dir():
        raise UserError(f"{path} is not a run directory (expected a folder made by `imgclf train`)")
    run = Run(root)
    if not (run.model_dir / "model.json").exists():
        raise UserError(
            f"{path} holds no trained model (no model/model.json); "
            "it may be unfinished: train it with `imgclf train ... --out {path}`"
        )
    return run


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: Path, obj) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_csv(path: Path, rows) -> None:
    """Rows (the first being the header) as a CSV file, written atomically."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    atomic_write_text(path, buf.getvalue())


def append_jsonl(path: Path, obj) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj) + "\n")


# --------------------------------------------------------------------------- ownership and locking
#
# Two files inside a run directory make it safe to write: the marker says imgclf created the
# folder as a run (so --overwrite may replace it), the lock says which process writes it now.

MARKER = ".imgclf-run"
LOCK = ".imgclf-lock"

# Locks this process holds, by real path: a process re-entering its own run (evaluate calling
# export, say) must not lock itself out, as a second flock on a new descriptor would.
_held: dict[str, list] = {}
_held_guard = threading.Lock()


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when imgclf created ``path`` as a run (its marker file is there)."""
    return (Path(path) / MARKER).is_file()


def write_marker(root: Path) -> None:
    write_json(root / MARKER, {"imgclf_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


@contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive writer lock of ``run_dir`` for the block (the folder must exist).

    Another process holding it raises a UserError naming that process. The lock is an ``flock`` on
    ``.imgclf-lock`` inside the run: the kernel releases it when its holder exits, however it exits,
    so a run killed mid-training can be resumed at once. Re-entrant within a process.
    """
    root = Path(run_dir)
    key = os.path.realpath(root)
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    fd = _acquire(root)
    with _held_guard:
        _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        _release(fd)


def _acquire(root: Path) -> int:
    try:
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock {root} for writing ({exc.strerror})") from None
    if fcntl is None:  # no flock on this platform: one writer is then the user's to ensure
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(fd)
        os.close(fd)
        raise UserError(f"{root} is in use by {holder}; wait for it to finish or choose another folder") from None
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    info = {"pid": os.getpid(), "command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
    return fd


def _release(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"process {int(info['pid'])} (`{info['command']}`, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is writing its details right now
        return "another imgclf process"


class RunClaim:
    """A run directory this process is about to write, locked by :func:`claim_run_dir`.

    Nothing already in it is touched until :meth:`start`: a command that fails before then leaves
    the file system as it found it (the folders it created are removed again).
    """

    def __init__(self, root: Path, *, replace: bool, created: list[Path]):
        self.run = Run(root)
        self.replace = replace  # an existing run that --overwrite replaces at start()
        self.created = created  # folders this process made, outermost first
        self.started = False

    def start(self) -> None:
        """Training starts: an overwritten run's old contents go, and the marker is (re)written."""
        if self.replace:
            for entry in self.run.root.iterdir():
                if entry.name == LOCK:  # our own lock: deleting it would let a second writer in
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        write_marker(self.run.root)
        self.started = True

    def discard(self) -> None:
        """Remove what this process created, and nothing else."""
        if self.created:
            shutil.rmtree(self.created[0], ignore_errors=True)
        elif not self.replace:  # a folder that was empty before: leave it empty
            for name in (MARKER, LOCK):
                (self.run.root / name).unlink(missing_ok=True)


@contextmanager
def claim_run_dir(out: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> Iterator[RunClaim]:
    """Check, create and lock the run directory ``out`` for training; yields a :class:`RunClaim`.

    Refused with a UserError: ``out`` is a file; it is a non-empty folder and ``overwrite`` is off;
    ``overwrite`` is on but the folder is not a run imgclf created (no marker: a project folder
    with a ``config.yaml`` is never deleted); another process writes it. If the block fails before
    ``claim.start()``, what this call created is removed again.
    """
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder path for the run directory")
    if resume:
        with run_lock(root):
            claim = RunClaim(root, replace=False, created=[])
            claim.started = True  # a resumed run keeps everything it has
            yield claim
        return
    created: list[Path] = []
    if root.is_dir() and any(root.iterdir()):
        if overwrite and not is_run_dir(root):
            raise UserError(
                f"{out} was not created by imgclf train (it has no {MARKER} marker), so --overwrite will not delete it; "
                "choose another --out, or empty the folder yourself"
            )
        if not overwrite and not is_run_dir(root):
            raise UserError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    elif not root.is_dir():
        created = _make_dirs(root)
    with run_lock(root):  # before anything else: a run in use is reported as such
        replace = bool(any(e.name != LOCK for e in root.iterdir()))
        if replace and not overwrite:
            raise UserError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
        claim = RunClaim(root, replace=replace, created=created)
        if not replace:
            write_marker(root)  # at once, so a second process sees a run in use, not a stray folder
        try:
            yield claim
        except BaseException:
            if not claim.started:
                claim.discard()
            raise


def _make_dirs(root: Path) -> list[Path]:
    """Create ``root`` and its missing parents; returns those created, outermost first."""
    missing = [p for p in [root, *root.parents] if not p.exists()][::-1]
    created = []
    try:
        for p in missing:
            p.mkdir()
            created.append(p)
    except FileExistsError:  # another process created it a moment ago: not ours to remove
        if not root.is_dir():
            raise UserError(f"cannot create the run directory {root}: a file is in the way") from None
    except OSError as exc:
        for p in reversed(created):
            p.rmdir()
        raise UserError(f"cannot create the run directory {root} ({exc.strerror})") from None
    return created
