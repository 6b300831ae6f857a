"""fit(): time budgets (on a fake clock), early stopping, the monitored metric, and callbacks."""

from __future__ import annotations

import json

import pytest
from synth import make_folder

import imgclf
from imgclf.errors import UserError
from imgclf.train.callbacks import Callback
from imgclf.train.config import TrainConfig
from imgclf.train.fit import fit

pytestmark = pytest.mark.slow


def epochs_of(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes") / "d", per_class=40)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tick(Callback):
    """Each optimiser step takes ``seconds`` of fake time."""

    def __init__(self, clock: FakeClock, seconds: float):
        self.clock, self.seconds = clock, seconds

    def on_step_end(self, ctx):
        self.clock.now += self.seconds


def test_a_time_budget_plans_the_run_to_end_within_it(shapes, tmp_path):
    clock = FakeClock()
    cfg = TrainConfig(data=str(shapes), out=str(tmp_path / "run"), time="60s", batch_size=16, epochs=1)
    result = fit(cfg, callbacks=[Tick(clock, 1.0)], clock=clock)
    rows = epochs_of(tmp_path / "run")
    assert clock.now <= 60  # 1 s per step: no more steps than fit in the budget...
    assert rows[-1]["step"] >= 50  # ...and most of it used
    assert result.epochs == len(rows) > 1  # many epochs, not --epochs 1
    assert result.seconds == clock.now  # the result is timed by the same clock
    assert rows[-1]["lr"] < 0.05 * rows[0]["lr"] or rows[-1]["lr"] < 1e-4  # the schedule reached its end


def test_early_stopping_stops_and_keeps_the_best(shapes, tmp_path):
    result = imgclf.train(shapes, out=tmp_path / "run", epochs=40, early_stopping=2)
    rows = epochs_of(tmp_path / "run")
    assert result.stopped_early and len(rows) < 40
    best = max(rows, key=lambda r: r["val_accuracy"])  # the first epoch reaching the highest value
    assert rows[-1]["epoch"] - best["epoch"] == 2  # stopped exactly `patience` epochs after the best
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["epoch"] == best["epoch"]  # the saved model is the best by the monitored metric


def test_monitor_val_loss_keeps_the_lowest_loss_epoch(shapes, tmp_path):
    imgclf.train(shapes, out=tmp_path / "run", epochs=4, monitor="val_loss", preset="none")
    rows = epochs_of(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["epoch"] == min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert all("val_balanced_accuracy" in r for r in rows)


def test_early_stopping_refuses_what_it_cannot_do(shapes, tmp_path):
    with pytest.raises(UserError, match="validation split"):
        imgclf.train(shapes, out=tmp_path / "a", epochs=3, early_stopping=2, val_fraction=0)
    with pytest.raises(UserError, match="weight-averaging"):
        imgclf.train(shapes, out=tmp_path / "b", epochs=3, early_stopping=2, weight_averaging="lookahead")


class Recorder(Callback):
    """Records every hook; asks to stop at the end of epoch ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        self.events, self.stop_at = [], stop_at

    def on_train_start(self, ctx):
        self.events.append(("start", ctx.state.step, ctx.plan.total))

    def on_step_end(self, ctx):
        self.events.append(("step", ctx.state.step))

    def on_epoch_end(self, ctx, record):
        self.events.append(("epoch", record["epoch"], record["val_accuracy"], ctx.run.metrics.exists()))
        if record["epoch"] == self.stop_at:
            ctx.request_stop("stopped by the test")

    def on_checkpoint(self, ctx, tag, path):
        self.events.append(("checkpoint", tag, path.exists(), json.loads(path.read_text())["step"]))

    def on_run_end(self, ctx, result):
        self.events.append(("end", None if result is None else result.epochs))


def test_callbacks_see_every_phase_in_order_and_can_stop_training(shapes, tmp_path):
    recorder = Recorder(stop_at=2)
    cfg = TrainConfig(data=str(shapes), out=str(tmp_path / "run"), epochs=5, batch_size=16, checkpoint_every=4)
    result = fit(cfg, callbacks=[recorder])
    steps_per_epoch = 96 // 16
    kinds = [e[0] for e in recorder.events]
    assert recorder.events[0] == ("start", 0, 5 * steps_per_epoch) and recorder.events[-1] == ("end", 2)
    assert [e[1] for e in recorder.events if e[0] == "step"] == list(range(1, 2 * steps_per_epoch + 1))
    epoch_ends = [i for i, k in enumerate(kinds) if k == "epoch"]
    assert len(epoch_ends) == 2 and all(recorder.events[i][3] for i in epoch_ends)  # metrics.jsonl already written
    # Each epoch's "last" checkpoint follows its on_epoch_end; mid-epoch ones come at steps 4, 8, ...
    assert recorder.events[epoch_ends[0] + 1] == ("checkpoint", "last", True, steps_per_epoch)
    assert ("checkpoint", "last", True, 4) in recorder.events
    assert result.stopped_early and result.epochs == 2 and len(epochs_of(tmp_path / "run")) == 2
    with pytest.raises(UserError, match="finished training"):  # a stopped run counts as finished
        imgclf.train(resume=tmp_path / "run")


def test_callbacks_hear_of_a_failed_run(shapes, tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, ctx, record):
            raise RuntimeError("boom")

    recorder = Recorder()
    cfg = TrainConfig(data=str(shapes), out=str(tmp_path / "run"), epochs=2, batch_size=16)
    with pytest.raises(RuntimeError, match="boom"):
        fit(cfg, callbacks=[recorder, Boom()])
    assert recorder.events[-1] == ("end", None)
