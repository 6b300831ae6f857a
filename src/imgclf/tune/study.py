"""`imgclf tune`: an Optuna study whose trials are training runs.

Each trial draws training options from the search space (:mod:`.space`), trains with
:func:`~imgclf.train.fit.fit` into its own run directory ``OUT/trial-0007``, reports every
epoch's validation metric to the study's pruner (:mod:`.pruning`), and scores the run by the
monitored metric at its best epoch (what ``imgclf train`` keeps as the model). A trial that fails
with a UserError (say, a model too big for the image size) is recorded as failed, and the study
goes on; a dataset that cannot be trained on at all stops it.

The study lives in its storage (:mod:`.storage`), so the same command run again resumes it, and
several processes (``workers``, or several ``imgclf tune`` commands with the same ``--storage``
and ``--study``) share its trials: each asks the storage how many are done or running before
starting another, so together they run ``trials`` trials (a race can add one per extra worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import DataError, UserError
from ..progress import log
from ..runs import Run, write_json
from ..train.config import TrainConfig, resolve
from .space import load_space, max_epochs, searched, suggest
from .storage import PRUNERS, make_pruner, make_sampler, open_storage, shown, storage_url


@dataclass
class TuneSpec:
    """Everything a worker needs to run trials of a study (JSON, for worker processes)."""

    data: str
    out: str
    storage: str
    study: str
    trials: int
    deadline: float | None  # wall-clock time (time.time()) after which no trial starts
    pruner: str
    space: dict
    fixed: dict  # training options every trial uses (the command line's)
    monitor: str
    seed: int
    worker: int = 0
    threads: int | None = None  # torch threads per worker process


class _StopStudy(Exception):
    """A trial found that no trial can succeed (the data cannot be trained on)."""


def tune(
    data: str | os.PathLike, *, trials: int = 20, time_budget: str | float | None = None, storage: str | None = None,
    study: str | None = None, space: str | os.PathLike | None = None, pruner: str = "median",
    out: str | os.PathLike = "runs/tune", workers: int = 1, **options: Any,
):  # fmt: skip
    """Run (or resume) the study and report it; returns a :class:`~.report.TuneResult`."""
    from ..data.sources import open_source
    from ..train.budget import parse_duration
    from .report import build_result

    t0 = time.time()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UserError("--trials must be a whole number of at least 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError("--workers must be a whole number of at least 1")
    if pruner not in PRUNERS:
        raise UserError(f"--pruner must be {' or '.join(PRUNERS)}, not {pruner!r}")
    budget = parse_duration(time_budget) if time_budget is not None else None
    fixed = _fixed_options(options)
    space_dict = load_space(space)
    out_dir = Path(out).expanduser()
    base = _check_base(str(data), out_dir, space_dict, fixed)
    open_source(str(data))  # a missing or empty dataset: one error now, not one per trial
    url = storage_url(storage, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study or out_dir.resolve().name
    _claim_out(out_dir, url, name)
    spec = TuneSpec(
        data=str(data), out=str(out_dir.resolve()), storage=url, study=name, trials=trials,
        deadline=t0 + budget if budget else None, pruner=pruner, space=space_dict, fixed=fixed,
        monitor=base.monitor, seed=base.seed,
    )  # fmt: skip
    _create_study(spec)
    dimensions = [k for k in searched(space_dict) if k not in fixed]
    log(f"tune: study {name!r} in {shown(url)}: {trials} trials of {', '.join(dimensions) or 'nothing'}"
        f" ({base.monitor}, {pruner} pruner, {workers} worker{'s' if workers > 1 else ''})")  # fmt: skip
    if workers == 1:
        run_worker(spec)
    else:
        _run_workers(spec, workers)
    return build_result(spec, seconds=time.time() - t0)


def run_worker(spec: TuneSpec) -> None:
    """Run trials of the study until it has ``spec.trials`` (done or running) or the deadline passes."""
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    study = _load(open_storage(spec.storage), spec)
    study.sampler = make_sampler(spec.seed, spec.worker, len(study.get_trials(deepcopy=False)))
    while spec.deadline is None or time.time() < spec.deadline:
        if counted(study) >= spec.trials and not waiting(study):  # a waiting trial (a retry, an enqueued one) is part of them
            break
        try:
            study.optimize(lambda trial: objective(trial, spec), n_trials=1, catch=(UserError,), gc_after_trial=True)
        except _StopStudy as exc:
            raise UserError(str(exc)) from None


def objective(trial, spec: TuneSpec) -> float:
    """Train one trial's configuration; its score is the monitored metric at the best epoch."""
    import optuna

    from ..train.fit import fit
    from .pruning import TrialPruning

    options = suggest(trial, spec.space, spec.fixed)
    run_dir = Path(spec.out) / f"trial-{trial.number:04d}"
    if options.get("log_dir"):  # TensorBoard shows each sub-folder as a run: one per trial, not all mixed in one
        options["log_dir"] = str(Path(options["log_dir"]) / run_dir.name)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("worker", spec.worker)
    log(f"trial {trial.number}: " + ", ".join(f"{k}={_short(trial.params[k])}" for k in trial.params))
    pruning = TrialPruning(trial, spec.monitor)
    try:
        result = fit(resolve(None, data=spec.data, out=str(run_dir), **options), callbacks=[pruning])
    except DataError as exc:
        trial.set_user_attr("error", str(exc))
        raise _StopStudy(str(exc)) from None
    except UserError as exc:  # this trial's choice of options (a model that cannot take the image size, ...)
        trial.set_user_attr("error", str(exc))
        log(f"trial {trial.number} failed: {exc}")
        raise
    config = result.config.to_dict()
    del config["out"]
    trial.set_user_attr("config", config)  # best.yaml comes from here, wherever the run directory is
    trial.set_user_attr("epochs", result.epochs)
    trial.set_user_attr("seconds", round(result.seconds, 1))
    if pruning.pruned_at is not None:
        trial.set_user_attr("pruned_at", pruning.pruned_at)
        log(f"trial {trial.number} pruned after epoch {pruning.pruned_at}")
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    value = score(result, spec.monitor)
    log(f"trial {trial.number}: {spec.monitor} {value:.4f} ({result.epochs} epochs, {result.seconds:.0f}s)")
    return value


def score(result, monitor: str) -> float:
    """The run's ``monitor`` at its best epoch (with lookahead averaging: its last, the model's)."""
    records = {r["epoch"]: r for r in Run(Path(result.run_dir)).read_metrics()}
    epoch = max(records, default=0) if result.config.weight_averaging == "lookahead" else result.best_epoch
    value = records.get(epoch, {}).get(monitor)
    if value is None:
        raise UserError(f"tuning needs a validation split to score trials by {monitor}: set --val-fraction above 0 or add a val/ folder")
    return float(value)


def counted(study) -> int:
    """Trials that count towards ``--trials``: finished, pruned, running, or failed by a
    UserError (a trial whose process died does not count: its parameters are tried again)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
            n += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            n += 1
    return n


def waiting(study) -> int:
    """Trials queued to run (retries of trials whose process died, trials enqueued by hand)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


# ----------------------------------------------------------------------------------- set-up


def _fixed_options(options: dict) -> dict:
    known = {f.name for f in fields(TrainConfig)} - {"data", "out", "time"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) for tune: {', '.join(unknown)}")
    fixed = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items() if v is not None}
    TrainConfig.check_types(fixed)
    return fixed


def _check_base(data: str, out: Path, space: dict, fixed: dict) -> TrainConfig:
    """The options every trial shares, validated once (a bad one is one error, not N failed trials)."""
    shared = {k: v for k, v in space.items() if not isinstance(v, dict | list) and k in TrainConfig.__dataclass_fields__}
    cfg = resolve(None, data=data, out=str(out / "trial-0000"), **{**shared, **fixed}).validate()
    if cfg.val_fraction == 0 and not _has_val_folder(data):
        raise UserError("tuning scores trials on the validation split: --val-fraction must be above 0 (or the data needs a val/ folder)")
    return cfg


def _has_val_folder(data: str) -> bool:
    from ..data.sources import open_source

    return any(s.split == "val" for s in open_source(data).samples)


def _claim_out(out: Path, url: str, name: str) -> None:
    """OUT belongs to one study: its trial folders are named by trial number."""
    record = out / "tune.json"
    mine = {"storage": shown(url), "study": name}
    if record.is_file():
        try:
            theirs = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            theirs = {}
        if {k: theirs.get(k) for k in mine} != mine:
            raise UserError(
                f"{out} holds the trials of study {theirs.get('study')!r} in {theirs.get('storage')}; "
                "give the same --storage and --study to resume it, or another --out"
            )
    elif any(p.name.startswith("trial-") for p in out.iterdir()):
        raise UserError(f"{out} already holds trial folders of another study; choose another --out")
    else:
        write_json(record, mine)


def _create_study(spec: TuneSpec) -> None:
    import optuna

    direction = "minimize" if spec.monitor == "val_loss" else "maximize"
    storage = open_storage(spec.storage)
    study = optuna.create_study(storage=storage, study_name=spec.study, direction=direction, load_if_exists=True)
    defines = {"data": spec.data, "monitor": spec.monitor, "space": spec.space, "fixed": spec.fixed}
    recorded = study.user_attrs.get("defines")
    if recorded is None:
        study.set_user_attr("defines", json.loads(json.dumps(defines)))
    elif recorded != json.loads(json.dumps(defines)):
        changed = [k for k in defines if recorded.get(k) != json.loads(json.dumps(defines[k]))]
        raise UserError(
            f"study {spec.study!r} was started with another {' and '.join(changed)}; resume it with the same "
            "data, --space and options, or start a new study with --study NAME"
        )
    if study.direction.name.lower() != direction:
        raise UserError(f"study {spec.study!r} was made to {study.direction.name.lower()}, but --monitor {spec.monitor} needs {direction}")


def _load(storage, spec: TuneSpec):
    import optuna

    pruner = make_pruner(spec.pruner, max_epochs(spec.space, spec.fixed))
    return optuna.load_study(study_name=spec.study, storage=storage, pruner=pruner)


def _run_workers(spec: TuneSpec, workers: int) -> None:
    """``workers`` processes on the study, each with its share of the CPU cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    procs = []
    try:
        for k in range(workers):
            payload = json.dumps(asdict(TuneSpec(**{**asdict(spec), "worker": k, "threads": threads})))
            proc = subprocess.Popen([sys.executable, "-m", "imgclf.tune.worker"], stdin=subprocess.PIPE, text=True)
            proc.stdin.write(payload)
            proc.stdin.close()
            procs.append(proc)
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    failed = [(k, c) for k, c in enumerate(codes) if c != 0]
    if failed:
        k, code = failed[0]
        raise UserError(f"tuning worker {k} stopped with exit code {code} (see its message above); the same command resumes the study")


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
