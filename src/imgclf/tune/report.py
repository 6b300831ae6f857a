"""What a study found: its trials as rows, ``OUT/best.yaml`` (the best trial's configuration, which
`imgclf train --config` accepts), ``OUT/trials.csv`` and Optuna's plots."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..progress import log
from ..runs import atomic_write_text, write_csv
from .storage import shown

if TYPE_CHECKING:
    from .study import TuneSpec


@dataclass
class TrialRow:
    """One trial: its state (complete, pruned, fail, running, waiting), score and parameters."""

    number: int
    state: str
    value: float | None
    params: dict
    epochs: int | None = None
    seconds: float | None = None
    pruned_at: int | None = None
    error: str | None = None
    run_dir: str | None = None
    worker: int | None = None  # which worker process of the command ran it


@dataclass
class TuneResult:
    """What `imgclf tune` reports: every trial, the best one, and the files written under ``out``."""

    out: Path
    storage: str  # the URL, password hidden
    study: str
    monitor: str
    direction: str
    trials: list[TrialRow]
    best: TrialRow | None
    best_config: Path | None
    trials_csv: Path
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.state == state)

    def top(self, n: int = 10) -> list[TrialRow]:
        """The ``n`` best finished trials, best first."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return sorted(done, key=lambda t: t.value, reverse=self.direction == "maximize")[:n]


def build_result(spec: TuneSpec, seconds: float) -> TuneResult:
    """Read the study back from its storage and write best.yaml, trials.csv and the plots."""
    from .plots import write_plots
    from .storage import open_storage
    from .study import _load

    study = _load(open_storage(spec.storage), spec)
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    out = Path(spec.out)
    direction = study.direction.name.lower()
    result = TuneResult(out, shown(spec.storage), spec.study, spec.monitor, direction, rows, None, None, out / "trials.csv",
                        seconds=seconds)  # fmt: skip
    top = result.top(1)
    if top:
        result.best = top[0]
        best_trial = next(t for t in study.get_trials(deepcopy=False) if t.number == result.best.number)
        result.best_config = write_best_config(out / "best.yaml", best_trial, spec)
    write_trials_csv(result.trials_csv, rows)
    result.plots = write_plots(study, out)
    return result


def trial_row(trial) -> TrialRow:
    attrs = trial.user_attrs
    return TrialRow(
        number=trial.number, state=trial.state.name.lower(), value=trial.value, params=dict(trial.params),
        epochs=attrs.get("epochs"), seconds=attrs.get("seconds"), pruned_at=attrs.get("pruned_at"),
        error=attrs.get("error"), run_dir=attrs.get("run_dir"), worker=attrs.get("worker"),
    )  # fmt: skip


def write_best_config(path: Path, trial, spec: TuneSpec) -> Path | None:
    """The best trial's resolved configuration (as its run's config.yaml has it, without ``out``)."""
    config = trial.user_attrs.get("config")
    if config is None:
        log(f"tune: trial {trial.number} recorded no configuration; best.yaml not written")
        return None
    header = (
        f"# The best configuration of study {spec.study!r}: trial {trial.number}, {spec.monitor} {trial.value:.4f}\n"
        f"# (run directory {trial.user_attrs.get('run_dir')}). Retrain it with:\n"
        f"#   imgclf train --config {path} --out runs/best\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def write_trials_csv(path: Path, rows: list[TrialRow]) -> None:
    names = list(dict.fromkeys(k for r in rows for k in r.params))
    header = ["number", "state", "value", "epochs", "seconds", "pruned_at", "error", "run_dir", *names]
    table = [header] + [
        [r.number, r.state, "" if r.value is None else r.value, _cell(r.epochs), _cell(r.seconds), _cell(r.pruned_at),
         r.error or "", r.run_dir or "", *(_cell(r.params.get(n)) for n in names)]
        for r in rows
    ]  # fmt: skip
    write_csv(path, table)


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
