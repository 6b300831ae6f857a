"""The training state: what a checkpoint holds beyond the weights, and saving and restoring it.

A checkpoint is everything an interrupted run needs to continue as if it had not stopped: model,
optimiser, scheduler, weight averaging, the grad scaler, every random generator (torch, CUDA, the
loader's augmentation draws, mixup's) and the position in the epoch. :mod:`.checkpoint` writes it
(safetensors + JSON, atomically); this module decides what goes in and checks, on resume, that it
fits the run's configuration.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import UserError
from ..progress import log
from ..runs import Run, atomic_write_text, write_yaml
from .averaging import Lookahead
from .checkpoint import load_checkpoint, model_state, prefixed, save_checkpoint
from .distributed import is_main_process
from .distributed_state import rank_random_states, restore_rank_random_states

if TYPE_CHECKING:
    from .context import TrainContext


@dataclass
class TrainState:
    """Where training is: the counters a checkpoint must hold beyond tensors."""

    epoch: int = 0  # the current (or last finished) epoch, 1-based
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained (0: at an epoch boundary)
    cycle_start: int = 0  # the step where the current learning-rate cycle began (extensions add cycles)
    best_score: float = -math.inf
    best_epoch: int = 0
    stopped_early: bool = False


def save_state(ctx: TrainContext, tag: str) -> Path:
    """Write checkpoint ``tag`` (``last`` or ``best``) of the run; returns its JSON path."""
    extra = {"rng.torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        extra["rng.cuda"] = torch.cuda.get_rng_state(ctx.device)
    if ctx.loader.generator is not None:
        extra["rng.loader"] = ctx.loader.generator.get_state()
    for avg in (ctx.averager, ctx.ema):
        if avg is not None:
            extra.update({f"avg.{k}": v for k, v in avg.state_dict().items()})
    step = ctx.step
    meta = {
        **asdict(ctx.state),
        "plan_total": ctx.plan.total,
        "ema_updates": ctx.ema.updates if ctx.ema else 0,
        "grad_scaler": step.scaler.state_dict() if step.scaler else None,
        "scheduler": step.scheduler.state_dict(),
        "mix_rng": step.mixer.state(),
        # What the weights are, so that a resume against a changed configuration is refused clearly.
        "architecture": ctx.config.model,
        "num_classes": len(ctx.data.classes),
        "optimizer_class": type(step.optimizer).__name__,
        "preprocess": ctx.preprocess.to_dict(),
    }
    # DDP hook: every rank's generators go into rank 0's checkpoint; only rank 0 writes it.
    rank_tensors, rank_meta = rank_random_states(ctx)
    if not is_main_process():
        return ctx.run.checkpoints / f"{tag}.json"
    extra.update(rank_tensors)
    meta.update(rank_meta)
    path = save_checkpoint(ctx.run.checkpoints, tag, model=ctx.model, optimizer=step.optimizer, extra_tensors=extra, meta=meta)
    ctx.callbacks.on_checkpoint(ctx, tag, path)
    return path


def recorded_preprocess(run: Run) -> dict | None:
    """The preprocessing a resumed run's last checkpoint was trained with (None before it was recorded)."""
    try:
        return json.loads((run.checkpoints / "last.json").read_text(encoding="utf-8")).get("preprocess")
    except (OSError, ValueError, AttributeError):
        return None  # load_checkpoint reports a missing or damaged checkpoint in its own words


def restore_state(ctx: TrainContext, extend_epochs: int | None) -> None:
    """Continue ``ctx``'s run from its last checkpoint, or extend a finished one by a new
    learning-rate cycle of ``extend_epochs`` epochs."""
    run, st, step = ctx.run, ctx.state, ctx.step
    tensors, optim_state, meta = load_checkpoint(run.checkpoints, "last")
    _check_fits(ctx, tensors, meta)
    ctx.model.load_state_dict(model_state(tensors))
    try:
        step.optimizer.load_state_dict(optim_state)
    except (ValueError, KeyError) as exc:
        raise UserError(
            f"{run.root}'s checkpoint does not fit its configuration's optimiser ({exc}); restore its config.yaml or start a new run"
        ) from None
    step.scheduler.load_state_dict(meta["scheduler"])
    for key, value in asdict(TrainState(**{k: meta[k] for k in asdict(TrainState())})).items():
        setattr(st, key, value)
    ctx.plan.total = meta["plan_total"]
    for avg in (ctx.averager, ctx.ema):
        if avg is not None:
            avg.load_state_dict({k: v.to(ctx.device) for k, v in prefixed(tensors, "avg.").items()})
    if ctx.ema is not None:
        ctx.ema.updates = meta["ema_updates"]
    if step.scaler is not None and meta.get("grad_scaler"):
        step.scaler.load_state_dict(meta["grad_scaler"])
    step.mixer.load_state(meta["mix_rng"])
    torch.set_rng_state(tensors["rng.torch"])
    if ctx.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], ctx.device)
    if st.batch_in_epoch:
        ctx.loader.resume_at(st.batch_in_epoch, tensors["rng.loader"])
    restore_rank_random_states(ctx, tensors, meta)  # DDP hook: ranks other than 0 take their own generators
    finished = st.step >= ctx.plan.total or st.stopped_early
    if finished and not extend_epochs:
        raise UserError(f"{run.root} finished training; pass --epochs N to train N more epochs")
    if extend_epochs and not finished:
        raise UserError(f"{run.root} has not finished; resume it without --epochs first, then extend it")
    if extend_epochs:  # a new learning-rate cycle (warmup, then decay) of N more epochs
        st.cycle_start, ctx.plan.total, st.stopped_early = st.step, st.step + extend_epochs * len(ctx.loader), False
        ctx.config.epochs += extend_epochs
        if is_main_process():  # DDP hook: only rank 0 writes the run directory
            write_yaml(run.config, ctx.config.to_dict())
        if ctx.averager is not None:
            ctx.averager = Lookahead(ctx.model, ctx.plan.total - st.cycle_start)
    # Epochs logged after the checkpoint are replayed: drop their lines.
    kept = [r for r in run.read_metrics() if r["epoch"] <= st.epoch - (1 if st.batch_in_epoch else 0)]
    if is_main_process():  # DDP hook: only rank 0 writes the run directory
        atomic_write_text(run.metrics, "".join(json.dumps(r) + "\n" for r in kept))
    log(f"resuming {run.root} at epoch {st.epoch or 1}, step {st.step} of {ctx.plan.total}")


def _check_fits(ctx: TrainContext, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """One sentence when the checkpoint's weights are not those of the run's configuration (an
    edited config.yaml, another run's checkpoints copied in)."""
    where, cfg = ctx.run.root, ctx.config
    fix = "restore its config.yaml or start a new run"
    if meta.get("architecture", cfg.model) != cfg.model:
        raise UserError(f"{where}'s checkpoint holds a {meta['architecture']} but its config.yaml asks for {cfg.model}; {fix}")
    classes = len(ctx.data.classes)
    if meta.get("num_classes", classes) != classes:
        raise UserError(f"{where}'s checkpoint has {meta['num_classes']} classes but the run's data has {classes}; {fix}")
    optimizer = type(ctx.step.optimizer).__name__
    if meta.get("optimizer_class", optimizer) != optimizer:
        raise UserError(f"{where}'s checkpoint was trained with {meta['optimizer_class']}, not --optimizer {cfg.optimizer}; {fix}")
    own, saved = ctx.model.state_dict(), model_state(tensors)
    odd = sorted(set(own) ^ set(saved))
    if odd:
        raise UserError(f"{where}'s checkpoint does not fit a {cfg.model} ({len(odd)} tensors differ by name, e.g. {odd[0]}); {fix}")
    for name, value in own.items():
        if tuple(saved[name].shape) != tuple(value.shape):
            raise UserError(
                f"{where}'s checkpoint does not fit a {cfg.model} with {classes} classes "
                f"({name} is {list(saved[name].shape)} there, {list(value.shape)} here); {fix}"
            )
