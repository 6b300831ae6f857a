"""Callbacks: how things plug into training without editing :func:`~imgclf.train.fit.fit`.

A callback overrides any of five hooks; each gets the :class:`~.context.TrainContext` (the
config, the run directory ``ctx.run``, the model, optimiser, plan and counters ``ctx.state``):

- ``on_train_start(ctx)``: everything is built (and restored, when resuming); no step taken yet.
- ``on_step_end(ctx)``: after each optimiser step (``ctx.loss()`` reads its loss; sparingly, it
  makes a GPU wait).
- ``on_epoch_end(ctx, record)``: the epoch's metrics (the dict written to metrics.jsonl), before
  its checkpoint is written. ``ctx.request_stop(reason)`` here ends training after this epoch and
  marks the run finished (early stopping, a tuner pruning a trial).
- ``on_checkpoint(ctx, tag, path)``: checkpoint ``tag`` (``last`` or ``best``) was just written.
- ``on_run_end(ctx, result)``: training ended, with the TrainResult, or None when it failed (the
  exception then propagates).

imgclf's own progress bar, epoch log lines, metrics.jsonl and early stopping are callbacks; the
experiment loggers, distributed training and the tuner of later issues are meant to be too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..progress import log, make_progress
from ..runs import append_jsonl

if TYPE_CHECKING:
    from .config import TrainConfig
    from .context import TrainContext
    from .fit import TrainResult


class Callback:
    """Base class: every hook does nothing."""

    def on_train_start(self, ctx: TrainContext) -> None:
        pass

    def on_step_end(self, ctx: TrainContext) -> None:
        pass

    def on_epoch_end(self, ctx: TrainContext, record: dict) -> None:
        pass

    def on_checkpoint(self, ctx: TrainContext, tag: str, path: Path) -> None:
        pass

    def on_run_end(self, ctx: TrainContext, result: TrainResult | None) -> None:
        pass


class Callbacks(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: list[Callback]):
        self.items = list(callbacks)

    def on_train_start(self, ctx):
        for c in self.items:
            c.on_train_start(ctx)

    def on_step_end(self, ctx):
        for c in self.items:
            c.on_step_end(ctx)

    def on_epoch_end(self, ctx, record):
        for c in self.items:
            c.on_epoch_end(ctx, record)

    def on_checkpoint(self, ctx, tag, path):
        for c in self.items:
            c.on_checkpoint(ctx, tag, path)

    def on_run_end(self, ctx, result):
        for c in self.items:
            c.on_run_end(ctx, result)


class MetricsFile(Callback):
    """One JSON line per epoch in the run's metrics.jsonl (before the epoch's checkpoint, so a
    crash between the two replays the epoch and resume drops the line)."""

    def on_epoch_end(self, ctx, record):
        append_jsonl(ctx.run.metrics, record)


class EpochLog(Callback):
    """A status line per epoch on stderr."""

    def on_epoch_end(self, ctx, record):
        val = f", val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.3f}" if "val_accuracy" in record else ""
        best = " *best*" if ctx.is_best and "val_accuracy" in record and ctx.averager is None else ""
        log(
            f"epoch {record['epoch']}{ctx.plan.of_epochs()}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.3f}"
            f"{val} ({record['epoch_seconds']:.1f}s, {record['images_per_second']:.0f} img/s){best}"
        )


class ProgressBar(Callback):
    """A progress bar over all steps (shown only when stderr is a terminal)."""

    def __init__(self):
        self.bar, self.task = None, None

    def on_train_start(self, ctx):
        self.bar = make_progress()
        self.bar.start()
        self.task = self.bar.add_task("training", total=ctx.plan.total, info="")

    def on_step_end(self, ctx):
        step = ctx.state.step
        if self.bar is not None and self.bar.live.is_started and step % 10 == 0:  # reading the loss syncs a GPU
            self.bar.update(self.task, completed=step, total=ctx.plan.total, info=f"epoch {ctx.state.epoch} loss {ctx.loss():.3f}")

    def on_run_end(self, ctx, result):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class EarlyStopping(Callback):
    """Stop once ``monitor`` has not improved for ``patience`` epochs (the best epoch is kept)."""

    def __init__(self, patience: int, monitor: str):
        self.patience, self.monitor = patience, monitor

    def on_epoch_end(self, ctx, record):
        if "val_accuracy" in record and record["epoch"] - ctx.state.best_epoch >= self.patience:
            ctx.request_stop(
                f"early stopping: {self.monitor} has not improved for {self.patience} epochs (best: epoch {ctx.state.best_epoch})"
            )


def default_callbacks(cfg: TrainConfig) -> list[Callback]:
    """What every run has: its metrics file, log lines, progress bar, drift baseline, and early stopping if asked."""
    from .drift_baseline import DriftBaseline  # imports this module: bound at call time

    callbacks: list[Callback] = [MetricsFile(), EpochLog(), ProgressBar(), DriftBaseline()]
    if cfg.early_stopping:
        callbacks.append(EarlyStopping(cfg.early_stopping, cfg.monitor))
    if cfg.log:  # experiment trackers (--log): last, so the artefacts they record are complete
        from .tracking import loggers  # TensorBoard and MLflow load only when asked for

        callbacks += loggers(cfg)
    return callbacks
