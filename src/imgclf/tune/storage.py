"""Where a study lives, and how its trials are drawn and pruned.

A study is kept in Optuna's relational storage, so it outlives the processes that run it:
SQLite for one machine (``sqlite:///study.db``; the default is ``OUT/study.db``), PostgreSQL
for several (``postgresql://user:password@host/db``). Every running trial writes a heartbeat;
a trial whose process died (its heartbeat older than :data:`GRACE_SECONDS`) is marked failed
by the next worker and its parameters tried again, so a crashed study resumes where it stopped.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from ..errors import UserError

PRUNERS = ("median", "hyperband")
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30  # three missed heartbeats: the process is gone
RETRIES = 2  # a trial whose process died is tried again at most this often


def storage_url(storage: str | None, out: Path) -> str:
    """The SQLAlchemy URL of the study's database: ``storage``, or SQLite at ``OUT/study.db``.

    ``postgresql://`` URLs are given psycopg 3's driver (imgclf's PostgreSQL client), since
    SQLAlchemy's default for them, psycopg2, is not installed.
    """
    if not storage:
        return f"sqlite:///{(out / 'study.db').resolve()}"
    url = storage.strip()
    if re.match(r"^postgres(ql)?://", url):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise UserError(f"--storage {storage!r}: give a database URL, e.g. sqlite:///study.db or postgresql://user:pass@host/db")
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).expanduser().parent
        if not folder.is_dir():
            raise UserError(f"--storage {storage}: the folder {folder} does not exist")
    return url


def shown(url: str) -> str:
    """``url`` with its password hidden, for messages and reports."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str, *, heartbeat: int = HEARTBEAT_SECONDS, grace: int = GRACE_SECONDS):
    """Optuna's RDB storage at ``url`` with heartbeats every ``heartbeat`` seconds; a trial
    without one for ``grace`` seconds is failed and tried again."""
    import optuna
    import sqlalchemy.exc

    quiet_optuna()
    if url.startswith("sqlite"):
        # Several workers write one SQLite file; a writer waits up to 60 s for the others'
        # transactions (each a few milliseconds) instead of failing with "database is locked".
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # a server that closed an idle connection is not an error
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
        )  # fmt: skip
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise UserError(f"cannot open the study storage {shown(url)} ({reason})") from None


def make_pruner(name: str, max_epochs: int):
    """The pruner ``--pruner`` names, judging trials by their per-epoch validation metric.

    median: a trial stops when its best value so far is worse than the median of earlier
    trials at the same epoch (after 4 trials have finished; never at epoch 1, which warmup makes
    noisy). hyperband: successive halving over budgets of 1 to ``max_epochs`` epochs, each
    bracket keeping the best third.
    """
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 2), reduction_factor=3)
    raise UserError(f"--pruner must be {' or '.join(PRUNERS)}, not {name!r}")


def make_sampler(seed: int, worker: int, trials_so_far: int):
    """TPE, seeded per worker and per restart: two workers (or a resumed study) seeded alike
    would draw the same first trials. constant_liar: a worker treats the others' running trials
    as poor, so parallel workers do not all try the same promising point."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([seed, worker, trials_so_far]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def quiet_optuna() -> None:
    """Optuna's own log lines and "experimental feature" warnings off: imgclf logs each trial in a
    line of its own, and heartbeats, retries and plots are features it chose on purpose."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
