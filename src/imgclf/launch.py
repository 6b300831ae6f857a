"""Several processes of one imgclf command, started by PyTorch's own launcher (torchrun's engine).

``imgclf train ... --nproc N`` and ``imgclf predict ... --nproc N`` run :func:`launch`: a child
``python -m imgclf.launch N <command>`` starts N copies of ``imgclf <command>`` through
``torch.distributed.run`` on this machine (``torchrun --standalone --nproc-per-node N``), and
reports their outcome without torchrun's failure traceback: a worker's
:class:`~imgclf.errors.UserError` comes back as that one sentence. ``torchrun ... -m imgclf
train ...`` (several machines too) starts the same workers without this wrapper.

A worker learns its place from torchrun's environment (:func:`launch_env`). Rank 0 reports its
result (a JSON-able dict) to the launcher through a folder named in ``IMGCLF_LAUNCH_REPORT``.

This module imports nothing heavy at import time: the CLI imports it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

REPORT_ENV = "IMGCLF_LAUNCH_REPORT"


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place among the workers torchrun started (one process alone: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_env() -> LaunchEnv:
    """Rank, world size and their per-machine counterparts from torchrun's environment variables."""
    env = os.environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return LaunchEnv()
    world = int(env["WORLD_SIZE"])
    return LaunchEnv(int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world)))


def needs_launch(nproc: int) -> bool:
    """True when ``nproc`` processes are asked for and this process is not already one of them."""
    return nproc > 1 and "WORLD_SIZE" not in os.environ


def die_with_parent() -> None:
    """Ask Linux to kill this worker when its launcher dies. torchrun starts each worker in its own
    session, so a launcher killed with SIGKILL (which it cannot pass on) would otherwise leave the
    workers training on, unseen, writing the run directory that a resume is about to use."""
    if not sys.platform.startswith("linux") or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


def launch(nproc: int, command: list[str]) -> dict:
    """Run ``imgclf <command>`` as ``nproc`` processes on this machine; returns rank 0's report.

    Each worker uses an equal share of the CPU cores for its threads (unless OMP_NUM_THREADS is
    set). A worker's UserError is raised here as the same one sentence.
    """
    with tempfile.TemporaryDirectory(prefix="imgclf-launch-") as report_dir:
        env = {**os.environ, REPORT_ENV: report_dir}
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        code = subprocess.run([sys.executable, "-m", "imgclf.launch", str(nproc), *command], env=env).returncode
        reports = Path(report_dir)
        errors = sorted(reports.glob("error-*.txt"))
        if errors:
            raise UserError(errors[0].read_text(encoding="utf-8"))
        if code == 130 or code == -signal.SIGINT:
            raise KeyboardInterrupt
        if code != 0:
            raise UserError(f"`imgclf {command[0]}` failed in one of its {nproc} processes (exit code {code}); see the messages above")
        result = reports / "result.json"
        return json.loads(result.read_text(encoding="utf-8")) if result.exists() else {}


@contextmanager
def worker_reports() -> Iterator[None]:
    """Around a command in a worker of :func:`launch`: a UserError is written for the launcher,
    which raises it once, and the worker exits with status 2 without printing it (N workers would
    print the same sentence N times). Outside :func:`launch`, the error propagates as usual. On
    success, the worker leaves its process group cleanly (:func:`leave_process_group`)."""
    try:
        yield
    except UserError as exc:
        folder = os.environ.get(REPORT_ENV)
        if not folder:
            raise
        _write(Path(folder) / f"error-{launch_env().rank:05d}.txt", str(exc))
        raise SystemExit(2) from None
    leave_process_group()


def leave_process_group() -> None:
    """After a worker's command succeeded: wait for every rank, then close the process group, as
    PyTorch asks of every program before it exits (torch.distributed warns otherwise), so that
    no rank's exit tears down connections that a rank still writing its results uses. Only on
    success: after an error the other ranks may never reach the barrier. (The SIGABRT that a
    finished rank sometimes died of at exit had another cause: see
    imgclf.train.sync_batchnorm._without_backward_context.)"""
    if "torch" not in sys.modules:  # no process group without torch; keep the CLI's start light
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def report(result: dict) -> None:
    """Rank 0 of a :func:`launch` hands its result (JSON-able) to the launcher."""
    folder = os.environ.get(REPORT_ENV)
    if folder and launch_env().is_main:
        _write(Path(folder) / "result.json", json.dumps(result))


def shows_output() -> bool:
    """Whether this process prints a command's results: a lone process, or rank 0 of a torchrun
    job; never a worker of :func:`launch` (its launcher prints them)."""
    return launch_env().is_main and REPORT_ENV not in os.environ


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m imgclf.launch N COMMAND...``: torchrun --standalone --nproc-per-node N -m imgclf
    COMMAND..., with an exit status instead of a traceback when a worker fails (2: a UserError)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    nproc, *command = sys.argv[1:] if argv is None else argv
    # The workers print their own errors; the agent's log of each failure would repeat them.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # "--": the command's own flags are never read as torchrun's (--log-dir is both; --nproc would be an abbreviation).
    args = parse_args(["--standalone", f"--nproc-per-node={int(nproc)}", "--monitor-interval=0.5", "-m", "--", "imgclf", *command])
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        if 2 in codes:
            return 2
        if -signal.SIGINT in codes or 130 in codes:
            return 130
        print(f"error: a worker failed (exit code {codes[0]})" if codes[0] > 0 else f"error: a worker was killed by signal {-codes[0]}",
              file=sys.stderr)  # fmt: skip
        return 1
    except SignalException:  # Ctrl-C or a kill: the agent has stopped the workers
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
