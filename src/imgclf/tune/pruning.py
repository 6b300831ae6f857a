"""The training callback through which a trial reports each epoch to Optuna and is pruned."""

from __future__ import annotations

from ..train.callbacks import Callback


class TrialPruning(Callback):
    """After each epoch, report ``monitor`` (a validation metric) to ``trial`` at step = epoch,
    and stop training when the study's pruner says the trial is not worth finishing.

    Stopping goes through ``ctx.request_stop``: the epoch's checkpoint is written and the run
    directory is a finished run like any other. The caller then raises ``optuna.TrialPruned``
    (:attr:`pruned_at` is the epoch), so the trial is recorded as pruned.
    """

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None
        self.reported: dict[int, float] = {}

    def on_epoch_end(self, ctx, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None:  # no validation split: nothing to judge by
            return
        epoch = record["epoch"]
        self.trial.report(float(value), epoch)
        self.reported[epoch] = float(value)
        if self.trial.should_prune():
            self.pruned_at = epoch
            ctx.request_stop(f"tuning: trial {self.trial.number} pruned after epoch {epoch} ({self.monitor} {value:.4f})")
