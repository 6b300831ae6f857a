"""The pruning callback: each epoch's validation metric goes to the trial, and the study's pruner
stops a poor trial through ctx.request_stop (so its run directory ends as a finished run)."""

from __future__ import annotations

import optuna
import pytest

from imgclf.tune.pruning import TrialPruning
from imgclf.tune.storage import make_pruner


class FakeContext:
    def __init__(self):
        self.stop_reason = None

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason


def run_trial(study, values: list[float]) -> tuple[TrialPruning, FakeContext]:
    """A trial through the callback, epoch by epoch, as fit() would call it; told to the study."""
    trial, ctx = study.ask(), FakeContext()
    callback = TrialPruning(trial, "val_accuracy")
    for epoch, value in enumerate(values, 1):
        callback.on_epoch_end(ctx, {"epoch": epoch, "val_accuracy": value, "train_loss": 1.0})
        if ctx.stop_reason:
            break
    pruned = callback.pruned_at is not None
    study.tell(trial, None if pruned else values[-1], state=optuna.trial.TrialState.PRUNED if pruned else None)
    return callback, ctx


def study_with_good_trials(pruner: str):
    study = optuna.create_study(direction="maximize", pruner=make_pruner(pruner, 4))
    for i in range(12):  # enough that each of Hyperband's brackets has trials to compare with
        run_trial(study, [0.5 + i / 100, 0.8, 0.85, 0.9])
    return study


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_a_poor_trial_is_stopped_and_a_good_one_is_not(pruner):
    study = study_with_good_trials(pruner)
    for _ in range(3):  # whichever bracket Hyperband puts them in
        callback, ctx = run_trial(study, [0.1, 0.1, 0.1, 0.1])
        assert callback.pruned_at is not None and f"pruned after epoch {callback.pruned_at}" in ctx.stop_reason
        assert callback.reported == {e: 0.1 for e in range(1, callback.pruned_at + 1)}
        callback, ctx = run_trial(study, [0.6, 0.9, 0.95, 0.97])
        assert callback.pruned_at is None and ctx.stop_reason is None
    trials = study.get_trials()
    assert trials[-2].state == optuna.trial.TrialState.PRUNED and trials[-2].intermediate_values[1] == 0.1


def test_the_median_pruner_never_judges_epoch_one():
    study = study_with_good_trials("median")
    ctx = FakeContext()
    callback = TrialPruning(study.ask(), "val_accuracy")
    callback.on_epoch_end(ctx, {"epoch": 1, "val_accuracy": 0.0})
    assert ctx.stop_reason is None  # warmup makes the first epoch noisy
    callback.on_epoch_end(ctx, {"epoch": 2, "val_accuracy": 0.0})
    assert callback.pruned_at == 2


def test_no_validation_metric_reports_nothing():
    study = study_with_good_trials("median")
    ctx = FakeContext()
    trial = study.ask()
    callback = TrialPruning(trial, "val_accuracy")
    for epoch in (1, 2, 3):
        callback.on_epoch_end(ctx, {"epoch": epoch, "train_loss": 1.0})
    assert callback.reported == {} and ctx.stop_reason is None
