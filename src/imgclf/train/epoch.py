"""One epoch of a run: train (the rest of) it, validate, keep the best weights."""

from __future__ import annotations

from functools import partial

from ..inference.bundle import save_bundle
from ..inference.timm_config import write_timm_config
from ..progress import log
from .context import TrainContext
from .distributed import is_main_process
from .engine import train_one_epoch, validate
from .state import TrainState, save_state


def run_epoch(ctx: TrainContext) -> dict:
    """Train the next epoch (or what a resumed one has left), validate it, and save the model
    bundle when its weights are the best so far; returns the epoch's metrics record."""
    st, cfg = ctx.state, ctx.config
    if not st.batch_in_epoch:
        st.epoch += 1
    epoch = st.epoch
    t0, ctx.epoch_start_step = ctx.clock(), st.step
    ctx.loader.set_epoch(epoch)
    if hasattr(ctx.model, "set_epoch"):
        ctx.model.set_epoch(epoch - 1)
    change = ctx.freezer.apply(epoch)
    if change:
        log(f"epoch {epoch}: {change}")
    train_loss, train_acc = train_one_epoch(
        ctx.step_model, ctx.loader, ctx.step, after_step=partial(after_step, ctx), after_train_mode=ctx.freezer.freeze_norm_stats
    )
    st.batch_in_epoch = 0
    ctx.plan.replan(st.step)
    if st.step >= ctx.plan.total and ctx.averager is not None:
        ctx.averager.finish(ctx.model)
    seconds = max(ctx.clock() - t0, 1e-9)  # a test's fake clock may stand still
    record = {
        "epoch": epoch,
        "step": st.step,
        "train_loss": train_loss,
        "train_accuracy": train_acc,
        "lr": ctx.step.optimizer.param_groups[0]["lr"],
        "epoch_seconds": round(seconds, 3),
        "images_per_second": round((st.step - ctx.epoch_start_step) * cfg.batch_size / seconds, 1),
    }
    if len(ctx.val_split):
        pre = ctx.preprocess
        if ctx.features is not None:
            record.update(ctx.features.validate(ctx.eval_model, epoch, ctx.device, ctx.precision))
        else:
            record.update(validate(ctx.eval_model, ctx.val_split, pre.mean, pre.std, ctx.device, ctx.precision, cfg.batch_size))
    ctx.is_best = keep_if_best(st, record, epoch, cfg.monitor, final_only=ctx.averager is not None)
    if ctx.is_best and is_main_process():  # DDP hook: only rank 0 writes the run directory
        save_bundle(
            ctx.eval_model, ctx.run.model_dir, architecture=cfg.model, classes=ctx.data.classes, preprocess=ctx.preprocess.to_dict(),
            extra={"epoch": epoch, "val_accuracy": record.get("val_accuracy"), "tta": cfg.tta, "pretrained": cfg.pretrained},
        )  # fmt: skip
        write_timm_config(ctx.run.model_dir, ctx.eval_model, ctx.data.classes, ctx.preprocess)  # timm.create_model("local-dir:RUN/model")
    ctx.record = record
    return record


def after_step(ctx: TrainContext, loss) -> bool:
    """After each optimiser step: count it, re-plan a time budget, average the weights, write a
    mid-epoch checkpoint when due, call the callbacks; True when training must stop."""
    st, cfg = ctx.state, ctx.config
    st.step += 1
    st.batch_in_epoch += 1
    if st.step == ctx.epoch_start_step + 3:
        ctx.plan.replan(st.step)  # a first estimate of the speed, for --time
    if ctx.averager is not None:
        ctx.averager.total = ctx.plan.total - st.cycle_start
        ctx.averager.step(ctx.model, st.step - st.cycle_start)
    if ctx.ema is not None:
        ctx.ema.update(ctx.model)
    if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and st.batch_in_epoch < len(ctx.loader):
        save_state(ctx, "last")  # mid-epoch: the position in the epoch is part of the state
    ctx.loss = loss
    ctx.callbacks.on_step_end(ctx)
    return st.step >= ctx.plan.total or ctx.stop_reason is not None


def keep_if_best(st: TrainState, record: dict, epoch: int, monitor: str, *, final_only: bool) -> bool:
    """Update the best score; True when this epoch's weights are the ones to keep.

    With a validation split the best epoch by ``monitor`` is kept; without one, the last. With
    lookahead only the final weights count: mid-run weights are not comparable.
    """
    if not final_only and "val_accuracy" in record:
        score = -record["val_loss"] if monitor == "val_loss" else record[monitor]
    else:
        score = epoch
    if score > st.best_score:
        st.best_score, st.best_epoch = score, epoch
        return True
    return False
