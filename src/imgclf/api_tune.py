"""The Python API of tuning and of the runs registry: :func:`tune`, :func:`list_runs`,
:func:`compare_runs` (exported as ``imgclf.tune`` and so on; kept beside :mod:`imgclf.api`,
which is at the project's file-size limit).

Like :mod:`imgclf.api`, each function imports what it needs when called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry.compare import Comparison
    from .registry.scan import RunInfo
    from .tune.report import TuneResult


def tune(
    data: str | os.PathLike,
    *,
    trials: int = 20,
    time: str | float | None = None,
    storage: str | None = None,
    study: str | None = None,
    space: str | os.PathLike | None = None,
    pruner: str = "median",
    out: str | os.PathLike = "runs/tune",
    workers: int = 1,
    **options: Any,
) -> TuneResult:
    """`imgclf tune`: search training options on ``data`` with Optuna, ``trials`` trials (each a
    run directory ``out/trial-NNNN``), pruning poor ones from their per-epoch validation metric.

    ``time``: start no trial after this long (e.g. ``"1h"``). ``storage``: the study's database
    URL (default SQLite at ``out/study.db``; ``postgresql://...`` for several machines);
    ``study``: its name (default: ``out``'s folder name); the same storage and study resume it.
    ``space``: a YAML file narrowing or widening the default search space
    (:mod:`imgclf.tune.space`). ``pruner``: ``median`` or ``hyperband``. ``workers``: processes
    sharing the study. ``options``: training options every trial uses (and that are then not
    searched), as :func:`imgclf.train` takes them.

    Returns a :class:`~imgclf.tune.report.TuneResult` (``.best``, ``.best_config``, the path of
    ``best.yaml``, which ``imgclf train --config`` accepts, ``.top()``, ``.plots``).
    """
    from .tune.study import tune as _tune

    return _tune(
        data, trials=trials, time_budget=time, storage=storage, study=study, space=space, pruner=pruner, out=out, workers=workers,
        **options,
    )  # fmt: skip


def list_runs(folder: str | os.PathLike = "runs") -> list[RunInfo]:
    """`imgclf runs`: every run directory under ``folder`` (recursively) with its model, data,
    epochs, training time, status (``running``, ``finished``, ``interrupted``) and key metrics
    (best validation accuracy, test accuracy once evaluated), as
    :class:`~imgclf.registry.scan.RunInfo` objects sorted by path."""
    from .registry.scan import list_runs as _list_runs

    return _list_runs(folder)


def compare_runs(runs: list[str | os.PathLike], *, plot: str | os.PathLike | None = None) -> Comparison:
    """`imgclf runs compare`: the configurations (``.differences``: the keys whose values differ)
    and key metrics of ``runs`` side by side; with ``plot`` (a .png path), their per-epoch curves
    drawn together. Returns a :class:`~imgclf.registry.compare.Comparison`."""
    from .registry.compare import compare_runs as _compare

    return _compare(list(runs), plot=plot)
