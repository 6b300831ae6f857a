"""Train a model as a configuration says and write its run directory.

:func:`fit` reads top to bottom: claim the run directory, prepare the data, build (or restore)
the training, write the run's files, then epochs until the plan is done or a callback stops it.
The parts live beside it: :mod:`.builders`, :mod:`.engine` and :mod:`.epoch`, :mod:`.budget`,
:mod:`.state`, :mod:`.callbacks`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..device import pick_device, pick_precision
from ..errors import UserError
from ..models import create_model, is_known
from ..progress import log
from ..runs import write_json, write_yaml
from .budget import Clock
from .builders import build_training, check_trainable, describe_training, fit_batch_size, prepare_data
from .callbacks import Callback, default_callbacks
from .config import TrainConfig
from .context import TrainContext
from .distributed import agree_on_batch, claim_for_this_rank, is_main_process, join_process_group, rank_callbacks
from .epoch import run_epoch
from .lr_find import lr_find, plot_range_test
from .preprocessing import resolve_preprocess
from .state import recorded_preprocess, restore_state, save_state


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_epoch: int
    best_val_accuracy: float | None
    final_train_loss: float
    seconds: float
    images_read: int
    images_skipped: int
    split_sizes: dict[str, int]
    precision: str
    config: TrainConfig
    stopped_early: bool = False


def fit(
    config: TrainConfig, *, overwrite: bool = False, resume: bool = False, extend_epochs: int | None = None,
    callbacks: Sequence[Callback] = (), clock: Clock = time.perf_counter,
) -> TrainResult:  # fmt: skip
    """Train a model as ``config`` says and write its run directory.

    With ``resume``, continue the run at ``config.out`` from its last checkpoint: the same split,
    weights, optimiser, schedule, weight averaging, random states and position in the epoch, so a
    deterministic run ends with the weights an uninterrupted one would have. A run that had
    finished is extended by a new learning-rate cycle of ``extend_epochs`` more epochs.
    ``callbacks`` run after imgclf's own (:mod:`imgclf.train.callbacks`); ``clock`` times the
    run and its ``--time`` budget.
    """
    t_start = clock()
    cfg = config.validate()
    join_process_group(cfg)  # DDP hook: under torchrun, this process is one rank of the run
    if not is_known(cfg.model):
        create_model(cfg.model, 2)  # raises the UserError with suggestions
    if cfg.splits and not resume and not Path(cfg.splits).expanduser().is_file():
        raise UserError(f"--splits {cfg.splits}: no such file (expected a splits.csv with path,label,split columns)")
    with claim_for_this_rank(cfg.out, overwrite=overwrite, resume=resume) as claim:  # DDP hook: rank 0 claims, the rest read
        run = claim.run
        preprocess = resolve_preprocess(cfg, recorded_preprocess(run) if resume else None)
        cfg.img_size = preprocess.img_size
        torch.manual_seed(cfg.seed)
        data = prepare_data(cfg, preprocess, splits_from=run.splits if resume else None)
        check_trainable(cfg, data)
        for said in ("recipe_line", "input_line"):  # what --preset auto and the input choices picked, and why
            if getattr(cfg, said, None):
                log(getattr(cfg, said))
        range_test = None
        if cfg.lr == "auto":
            range_test = lr_find(replace(cfg, lr=1.0), data=data)
            cfg.lr = range_test.suggestion  # config.yaml records the number, so --config reproduces the run
            torch.manual_seed(cfg.seed)
        if not resume:
            fit_batch_size(cfg, len(data.split("train")))
        agree_on_batch(cfg, len(data.split("train")))  # DDP hook: rank 0's lr and batch, split evenly across ranks
        log(
            f"data: {len(data.samples):,} images read, {len(data.skipped)} skipped, {len(data.classes)} classes; "
            f"train {len(data.split('train')):,} / val {len(data.split('val')):,} / test {len(data.split('test')):,} "
            f"({data.split_method}) [{clock() - t_start:.1f}s]"
        )
        device = pick_device(cfg.device)
        precision, why = pick_precision(cfg.precision, device)
        log(f"device: {device.type}, precision: {precision} ({why})")
        ctx, pretrained = build_training(
            cfg, run, data, preprocess, device, precision, resume=resume,
            callbacks=rank_callbacks([*default_callbacks(cfg), *callbacks]), clock=clock, t_start=t_start,  # DDP hook
        )  # fmt: skip
        if resume:
            restore_state(ctx, extend_epochs)
        claim.start()  # from here on the run directory is kept, whatever happens
        if is_main_process():  # DDP hook: only rank 0 writes the run directory
            if not resume:
                write_json(run.data_report, data.report())
                data.write_splits_csv(run.splits)
            write_yaml(run.config, cfg.to_dict())
            if range_test is not None:
                found = {"lrs": range_test.lrs, "losses": range_test.losses, "suggestion": range_test.suggestion}
                write_json(run.root / "lr_find.json", found)
                plot_range_test(range_test, run.root / "lr_find.png")
            if pretrained is not None:
                write_json(run.root / "pretrained.json", pretrained)
        if pretrained is not None:
            log(
                f"pretrained: {len(pretrained['loaded'])} tensors from {cfg.pretrained}; {len(pretrained['initialised'])} new "
                f"(the head for {len(data.classes)} classes), {len(pretrained['skipped'])} not used"
            )
        log(describe_training(ctx))
        return train_epochs(ctx)


def train_epochs(ctx: TrainContext) -> TrainResult:
    """Epochs until the plan's last step or a callback's stop; each ends with a checkpoint."""
    st, plan, callbacks = ctx.state, ctx.plan, ctx.callbacks
    plan.start(st.step)
    callbacks.on_train_start(ctx)
    result = None
    try:
        while st.step < plan.total:
            record = run_epoch(ctx)
            callbacks.on_epoch_end(ctx, record)
            st.stopped_early = ctx.stop_reason is not None  # checkpointed: a stopped run has finished
            save_state(ctx, "last")
            if ctx.is_best:
                save_state(ctx, "best")
            if ctx.stop_reason:
                log(ctx.stop_reason)
                break
        result = _result(ctx)
    finally:
        callbacks.on_run_end(ctx, result)
    return result


def _result(ctx: TrainContext) -> TrainResult:
    st, data = ctx.state, ctx.data
    if ctx.averager is not None:  # lookahead: the final weights are the model
        best_val = ctx.record.get("val_accuracy")
    else:
        best_val = next((r.get("val_accuracy") for r in ctx.run.read_metrics() if r["epoch"] == st.best_epoch), None)
    return TrainResult(
        run_dir=ctx.run.root,
        epochs=st.epoch,
        best_epoch=st.best_epoch,
        best_val_accuracy=best_val,
        final_train_loss=ctx.record.get("train_loss", float("nan")),
        seconds=ctx.clock() - ctx.t_start,
        images_read=len(data.samples),
        images_skipped=len(data.skipped),
        split_sizes={s: len(data.split(s)) for s in ("train", "val", "test")},
        precision=ctx.precision,
        config=ctx.config,
        stopped_early=st.stopped_early,
    )
