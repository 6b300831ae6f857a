"""The training loop: prepare data, build the model, fit, validate each epoch, keep the best
model, and write the run directory.

One plain function per phase (:func:`train_one_epoch`, :func:`validate`), as in torchvision's
reference scripts; :func:`fit` strings them together.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import Augment
from ..data.dataset import PreparedData, Split, prepare
from ..data.loader import BatchLoader
from ..data.preprocess import Preprocess
from ..device import pick_device, pick_precision
from ..errors import DataError, UserError
from ..inference.forward import logits_for_batches
from ..inference.normalize import normalize
from ..inference.precision import AUTOCAST_DTYPES, autocast
from ..models import create_model, default_img_size, is_known
from ..models.bundle import save_bundle
from ..models.pretrained import Freezer, backbone_groups, load_pretrained
from ..progress import log, make_progress
from ..runs import Run, append_jsonl, atomic_write_text, write_json, write_yaml
from .averaging import EMA, Lookahead
from .checkpoint import load_checkpoint, model_state, prefixed, save_checkpoint
from .config import TrainConfig
from .losses import balanced_class_weights, make_criterion
from .mix import mix_batch
from .optim import make_optimizer
from .schedule import lr_factor


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


def fit(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, extend_epochs: int | None = None) -> TrainResult:
    """Train a model as ``config`` says and write its run directory.

    With ``resume``, continue the run at ``config.out`` from its last checkpoint: the same split,
    weights, optimiser, schedule, weight averaging, random states and position in the epoch, so a
    deterministic run ends with the weights an uninterrupted one would have. A run that had
    finished is extended by a new learning-rate cycle of ``extend_epochs`` more epochs.
    """
    t_start = time.perf_counter()
    cfg = config.validate()
    if not is_known(cfg.model):
        create_model(cfg.model, 2)  # raises the UserError with suggestions
    cfg.img_size = cfg.img_size or default_img_size(cfg.model)
    if cfg.splits and not resume and not Path(cfg.splits).expanduser().is_file():
        raise UserError(f"--splits {cfg.splits}: no such file (expected a splits.csv with path,label,split columns)")
    run = Run(Path(cfg.out)) if resume else _make_run_dir(Path(cfg.out), overwrite)
    torch.manual_seed(cfg.seed)

    preprocess = Preprocess(cfg.img_size)
    data = prepare(
        cfg.data, preprocess,
        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed,
        group_column=cfg.group_column, cache_dir=cfg.cache_dir,
        # Resuming: exactly the recorded split; --splits: a given one (another run's, a CV fold).
        splits_from=run.splits if resume else Path(cfg.splits).expanduser() if cfg.splits else None,
    )  # fmt: skip
    train_split, val_split = data.split("train"), data.split("val")
    _check_trainable(data, train_split)
    if cfg.early_stopping and not len(val_split):
        raise UserError("--early-stopping needs a validation split: set --val-fraction above 0 or add a val/ folder")
    if cfg.lr == "auto":
        from .lr_find import lr_find

        found = lr_find(TrainConfig(**{**cfg.to_dict(), "lr": 1.0}), plot=run.root / "lr_find.png", data=data)
        write_json(run.root / "lr_find.json", {"lrs": found.lrs, "losses": found.losses, "suggestion": found.suggestion})
        cfg.lr = found.suggestion  # config.yaml records the number, so --config reproduces the run
        torch.manual_seed(cfg.seed)
    if not resume:
        _fit_batch_size(cfg, len(train_split))
        write_json(run.data_report, data.report())
        data.write_splits_csv(run.splits)
    write_yaml(run.config, cfg.to_dict())
    log(
        f"data: {len(data.samples):,} images read, {len(data.skipped)} skipped, {len(data.classes)} classes; "
        f"train {len(train_split):,} / val {len(val_split):,} / test {len(data.split('test')):,} ({data.split_method})"
        f" [{time.perf_counter() - t_start:.1f}s]"
    )

    device = pick_device(cfg.device)
    precision, why = pick_precision(cfg.precision, device)
    log(f"device: {device.type}, precision: {precision} ({why})")
    model, pretrained = build_model(cfg, len(data.classes), train_split, preprocess, device, load_weights=not resume)
    if pretrained is not None:
        log(
            f"pretrained: {len(pretrained['loaded'])} tensors from {cfg.pretrained}; "
            f"{len(pretrained['initialised'])} new (the head for {len(data.classes)} classes), "
            f"{len(pretrained['skipped'])} not used"
        )
        write_json(run.root / "pretrained.json", pretrained)
    freezer = Freezer(model, cfg.freeze, cfg.freeze_epochs)
    lr_scales = None
    if cfg.layer_decay < 1:
        groups = backbone_groups(model)
        lr_scales = {id(p): cfg.layer_decay ** (len(groups) - i) for i, g in enumerate(groups) for p in g}

    augment = augment_from_config(cfg)
    loader = train_loader(cfg, train_split, augment, device)
    # The compiled module shares its parameters with ``model``: the optimiser, weight averaging
    # and the saved bundle all work on ``model`` itself.
    step_model = torch.compile(model) if cfg.compile else model
    optimizer = make_optimizer(model, cfg, lr_scales)
    plan = StepPlan(len(loader), cfg.epochs, parse_duration(cfg.time) if cfg.time else None, t_start)
    warmup = int(cfg.warmup_epochs * len(loader))
    st = TrainState()

    def lr_at(step: int) -> float:  # LambdaLR counts steps since the start; schedules run per cycle
        n, total = step - st.cycle_start, plan.total - st.cycle_start
        return lr_factor(n, total, min(warmup, total // 2), shape=cfg.schedule, start=cfg.lr_start_factor, end=cfg.lr_end_factor)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    averager = Lookahead(model, plan.total) if cfg.weight_averaging == "lookahead" else None
    ema = EMA(model, cfg.ema_decay) if cfg.weight_averaging == "ema" else None
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    class_weight = balanced_class_weights(train_split.labels, len(data.classes)).to(device) if cfg.class_weights == "auto" else None
    criterion = make_criterion(cfg.loss, label_smoothing=cfg.label_smoothing, class_weight=class_weight, gamma=cfg.focal_gamma)
    mixer = None
    mix_rng = np.random.default_rng([cfg.seed, 7])
    if cfg.mixup or cfg.cutmix:
        mixer = lambda x, y: mix_batch(x, y, len(data.classes), mix_rng, mixup=cfg.mixup, cutmix=cfg.cutmix)

    def save_state(tag: str) -> None:
        extra = {"rng.torch": torch.get_rng_state()}
        if device.type == "cuda":
            extra["rng.cuda"] = torch.cuda.get_rng_state(device)
        if loader.generator is not None:
            extra["rng.loader"] = loader.generator.get_state()
        for avg in (averager, ema):
            if avg is not None:
                extra.update({f"avg.{k}": v for k, v in avg.state_dict().items()})
        meta = {**asdict(st), "plan_total": plan.total, "ema_updates": ema.updates if ema else 0,
                "grad_scaler": scaler.state_dict() if scaler else None, "scheduler": scheduler.state_dict(), "mix_rng": mix_rng.bit_generator.state}
        save_checkpoint(run.checkpoints, tag, model=model, optimizer=optimizer, extra_tensors=extra, meta=meta)

    if resume:
        tensors, optim_state, meta = load_checkpoint(run.checkpoints, "last")
        model.load_state_dict(model_state(tensors))
        optimizer.load_state_dict(optim_state)
        scheduler.load_state_dict(meta["scheduler"])
        st = TrainState(**{k: meta[k] for k in asdict(TrainState())})
        plan.total = meta["plan_total"]
        for avg in (averager, ema):
            if avg is not None:
                avg.slow = {k: v.to(device) for k, v in prefixed(tensors, "avg.").items()}
        if ema is not None:
            ema.updates = meta["ema_updates"]
        if scaler is not None and meta.get("grad_scaler"):
            scaler.load_state_dict(meta["grad_scaler"])
        mix_rng.bit_generator.state = meta["mix_rng"]
        torch.set_rng_state(tensors["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        if st.batch_in_epoch:
            loader.resume_at(st.batch_in_epoch, tensors["rng.loader"])
        finished = st.step >= plan.total or st.stopped_early
        if finished and not extend_epochs:
            raise UserError(f"{run.root} finished training; pass --epochs N to train N more epochs")
        if extend_epochs and not finished:
            raise UserError(f"{run.root} has not finished; resume it without --epochs first, then extend it")
        if extend_epochs:  # a new learning-rate cycle (warmup, then decay) of N more epochs
            st.cycle_start, plan.total, st.stopped_early = st.step, st.step + extend_epochs * len(loader), False
            cfg.epochs += extend_epochs
            write_yaml(run.config, cfg.to_dict())
            if averager is not None:
                averager = Lookahead(model, plan.total - st.cycle_start)
        # Epochs logged after the checkpoint are replayed: drop their lines.
        kept = [r for r in run.read_metrics() if r["epoch"] <= st.epoch - (1 if st.batch_in_epoch else 0)]
        atomic_write_text(run.metrics, "".join(json.dumps(r) + "\n" for r in kept))
        log(f"resuming {run.root} at epoch {st.epoch or 1}, step {st.step} of {plan.total}")
    log(
        f"model: {cfg.model} at {cfg.img_size}px, {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, "
        + (f"{cfg.epochs} epochs" if plan.budget is None else f"a {plan.budget:.0f}s budget") + f" of {len(loader)} steps each; "
        f"augmentation: {', '.join(augment.describe() + mix_description(cfg))}"
        + (f"; loss {cfg.loss}" + (", class weights" if class_weight is not None else "") if cfg.loss != "ce" or class_weight is not None else "")
        + ("; balanced sampler" if cfg.sampler == "balanced" else "")
        + (f"; preset {cfg.preset}" if cfg.preset else "")
    )

    bundle_meta = dict(architecture=cfg.model, classes=data.classes, preprocess=preprocess.to_dict())
    train_loss, step0 = math.nan, st.step
    record: dict = {}
    plan.start(st.step)
    with make_progress() as bar:
        task = bar.add_task("training", total=plan.total, info="")
        while st.step < plan.total:
            if not st.batch_in_epoch:
                st.epoch += 1
            epoch = st.epoch
            t0, step0 = time.perf_counter(), st.step
            loader.set_epoch(epoch)
            if hasattr(model, "set_epoch"):
                model.set_epoch(epoch - 1)
            change = freezer.apply(epoch)
            if change:
                log(f"epoch {epoch}: {change}")

            def on_step(loss_fn) -> bool:
                """After each optimiser step; returns True when training must stop."""
                st.step += 1
                st.batch_in_epoch += 1
                if st.step == step0 + 3:
                    plan.replan(st.step)  # a first estimate of the speed, for --time
                if averager is not None:
                    averager.total = plan.total - st.cycle_start
                    averager.step(model, st.step - st.cycle_start)
                if ema is not None:
                    ema.update(model)
                if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0 and st.batch_in_epoch < len(loader):
                    save_state("last")  # mid-epoch: the position in the epoch is part of the state
                if bar.live.is_started and st.step % 10 == 0:  # reading the loss syncs a GPU: not every step
                    bar.update(task, completed=st.step, total=plan.total, info=f"epoch {epoch} loss {loss_fn():.3f}")
                return st.step >= plan.total

            train_loss, train_acc = train_one_epoch(
                step_model, loader, optimizer, scheduler, criterion, preprocess, device, precision, on_step=on_step, mixer=mixer,
                after_train_mode=freezer.freeze_norm_stats, scaler=scaler,
            )
            st.batch_in_epoch = 0
            plan.replan(st.step)
            last_epoch = st.step >= plan.total
            if last_epoch and averager is not None:
                averager.finish(model)
            seconds = time.perf_counter() - t0
            record = {
                "epoch": epoch,
                "step": st.step,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": round(seconds, 3),
                "images_per_second": round((st.step - step0) * cfg.batch_size / seconds, 1),
            }
            # With EMA, the averaged weights are the ones validated and saved.
            with ema.applied(model) if ema is not None else nullcontext():
                if len(val_split):
                    val_loss, val_acc, val_bacc = validate(model, val_split, preprocess, device, precision, cfg.batch_size)
                    record.update(val_loss=val_loss, val_accuracy=val_acc, val_balanced_accuracy=val_bacc)
                improved = _keep_if_best(st, record, epoch, cfg.monitor, final_only=averager is not None)
                if improved:
                    save_bundle(
                        model, run.model_dir, **bundle_meta,
                        extra={"epoch": epoch, "val_accuracy": record.get("val_accuracy"), "tta": cfg.tta, "pretrained": cfg.pretrained},
                    )  # fmt: skip
            append_jsonl(run.metrics, record)
            stop = cfg.early_stopping and "val_accuracy" in record and epoch - st.best_epoch >= cfg.early_stopping
            st.stopped_early = bool(stop)
            save_state("last")
            if improved:
                save_state("best")
            log(
                f"epoch {epoch}{plan.of_epochs()}: train loss {train_loss:.4f} acc {train_acc:.3f}"
                + (f", val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.3f}" if "val_accuracy" in record else "")
                + f" ({seconds:.1f}s, {record['images_per_second']:.0f} img/s)"
                + (" *best*" if improved and "val_accuracy" in record and averager is None else "")
            )
            if stop:
                log(f"early stopping: {cfg.monitor} has not improved for {cfg.early_stopping} epochs (best: epoch {st.best_epoch})")
                break
    final_val = record.get("val_accuracy") if averager is not None else _best_val(run, st.best_epoch)
    return TrainResult(
        run_dir=run.root,
        epochs=st.epoch,
        best_epoch=st.best_epoch,
        best_val_accuracy=final_val,
        final_train_loss=train_loss,
        seconds=time.perf_counter() - t_start,
        images_read=len(data.samples),
        images_skipped=len(data.skipped),
        split_sizes={s: len(data.split(s)) for s in ("train", "val", "test")},
        precision=precision,
        config=cfg,
        stopped_early=st.stopped_early,
    )


def train_one_epoch(
    model, loader, optimizer, scheduler, criterion, preprocess, device, precision, on_step=None, mixer=None, after_train_mode=None,
    scaler=None,
):
    """One pass over ``loader``; returns (mean loss, accuracy). Losses stay on the device until
    the end of the epoch, so a GPU never waits for the host."""
    model.train()
    if after_train_mode is not None:
        after_train_mode()  # e.g. frozen blocks keep their batch-norm statistics
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in loader:
        x = normalize(x.to(device, non_blocking=True), preprocess.mean, preprocess.std)
        y = y.to(device, non_blocking=True)
        target = y
        if mixer is not None:
            x, target = mixer(x, y)  # soft targets; accuracy below is still against the true labels
        with autocast(device, precision):
            logits = model(x)
            loss = criterion(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if on_step and on_step(loss.item):
            break
    mean_loss = total_loss.item() / max(1, seen)
    if not math.isfinite(mean_loss):
        raise UserError(
            f"training diverged (loss {mean_loss}); lower the learning rate (now {optimizer.param_groups[0]['lr']:.2g})"
        )
    return mean_loss, correct.item() / max(1, seen)


def validate(model, split: Split, preprocess: Preprocess, device, precision, batch_size) -> tuple[float, float, float]:
    """(loss, accuracy, balanced accuracy) on ``split``; balanced accuracy is the mean per-class
    recall, the figure to select by when classes are imbalanced."""
    logits = logits_for_batches(
        model,
        (x for x, _ in BatchLoader(split, max(batch_size, 256), device=device)),
        mean=preprocess.mean, std=preprocess.std, device=device,
        autocast_dtype=AUTOCAST_DTYPES.get(precision),
    )  # fmt: skip
    y = split.labels
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    correct = logits.argmax(1) == y
    balanced = float(np.mean([correct[y == c].mean() for c in np.unique(y)]))
    return loss, float(np.mean(correct)), balanced


def _best_val(run: Run, epoch: int) -> float | None:
    return next((r.get("val_accuracy") for r in run.read_metrics() if r["epoch"] == epoch), None)


def _keep_if_best(st: TrainState, record: dict, epoch: int, monitor: str, *, final_only: bool) -> bool:
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


@dataclass
class TrainState:
    """Where training is: what a checkpoint must hold beyond tensors."""

    epoch: int = 0  # the current (or last finished) epoch, 1-based
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained (0: at an epoch boundary)
    cycle_start: int = 0  # the step where the current learning-rate cycle began (extensions add cycles)
    best_score: float = -math.inf
    best_epoch: int = 0
    stopped_early: bool = False


class StepPlan:
    """How many optimiser steps training takes: ``epochs`` x steps per epoch, or, with a time
    budget, as many as fit, re-estimated from the measured speed (validation included) after the
    first steps and after every epoch. The learning-rate schedule and weight averaging read
    ``total`` live, so they end exactly where training ends."""

    def __init__(self, steps_per_epoch: int, epochs: int, budget: float | None, t_start: float):
        self.steps_per_epoch, self.budget, self.t_start = steps_per_epoch, budget, t_start
        self.total = epochs * steps_per_epoch
        self.t_train, self.step0 = t_start, 0

    def start(self, step: int = 0) -> None:
        self.t_train, self.step0 = time.perf_counter(), step

    def replan(self, step: int) -> None:
        if self.budget is None or step <= self.step0:
            return
        now = time.perf_counter()
        per_step = (now - self.t_train) / (step - self.step0)
        remaining = self.budget - (now - self.t_start)
        self.total = max(step, step + int(0.98 * remaining / per_step))

    def of_epochs(self) -> str:
        n = -(-self.total // self.steps_per_epoch)
        return f"/{n}" if self.budget is None else f"/~{n}"


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h' or a plain number of seconds -> seconds."""
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise UserError(f"--time {text!r}: use a duration like 90s, 10m or 1.5h") from None
    if value <= 0:
        raise UserError("--time must be positive")
    return value


def build_model(cfg: TrainConfig, num_classes: int, train_split: Split, preprocess: Preprocess, device, *, load_weights: bool = True):
    """The model ``cfg`` describes, on ``device`` in channels-last order, initialised from data
    where the architecture asks for it and from ``--pretrained`` weights; returns (model, the
    pretrained report or None)."""
    model = create_model(
        cfg.model, num_classes, img_size=cfg.img_size, drop_rate=cfg.dropout, drop_path_rate=cfg.drop_path or None
    ).to(device)
    model = model.to(memory_format=torch.channels_last)
    if hasattr(model, "data_init"):  # e.g. fast_cnn's whitening stem, computed from training images
        # A random sample: listings are often sorted by class, and one class's statistics are not the data's.
        pick = np.random.default_rng(cfg.seed).choice(len(train_split), min(5000, len(train_split)), replace=False)
        sample = train_split.pixels[np.sort(train_split.rows[pick])]
        model.data_init(normalize(torch.from_numpy(sample).to(device), preprocess.mean, preprocess.std))
    report = None
    if cfg.pretrained and load_weights:
        report = load_pretrained(model, cfg.pretrained, architecture=cfg.model)
    return model, report


def train_loader(cfg: TrainConfig, split: Split, augment: Augment, device) -> BatchLoader:
    return BatchLoader(
        split, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed, augment=augment, device=device,
        balanced=cfg.sampler == "balanced",
    )  # fmt: skip


def augment_from_config(cfg: TrainConfig) -> Augment:
    """The batched augmentation that ``cfg`` asks for (every option maps to one transform)."""
    return Augment(
        cfg.img_size,
        flip=cfg.flip,
        alternating_flip=cfg.flip and cfg.alternating_flip,
        crop_padding=cfg.crop_padding,
        seed=cfg.seed,
        random_resized_crop=(cfg.random_resized_crop, 1.0) if cfg.random_resized_crop else None,
        rotation=cfg.rotation,
        perspective=cfg.perspective,
        color_jitter=(cfg.color_jitter,) * 3 if cfg.color_jitter else None,
        noise=cfg.noise,
        erasing=cfg.erasing,
        trivial_augment=cfg.auto_augment == "trivial",
        rand_augment=(2, 9) if cfg.auto_augment == "rand" else None,
    )


def mix_description(cfg: TrainConfig) -> list[str]:
    return [f"{name} (alpha {a:g})" for name, a in (("mixup", cfg.mixup), ("cutmix", cfg.cutmix)) if a]


def _fit_batch_size(cfg: TrainConfig, n_train: int) -> None:
    """A batch larger than a quarter of the training split leaves too few steps to learn: halve
    it until at least four fit, scaling the learning rate with it (linearly for SGD, by the
    square root for adaptive optimisers)."""
    batch = cfg.batch_size
    while batch > 16 and batch * 4 > n_train:
        batch //= 2
    if batch != cfg.batch_size:
        ratio = batch / cfg.batch_size
        lr = cfg.lr * (ratio if cfg.optimizer == "sgd" else math.sqrt(ratio))
        log(f"batch size {cfg.batch_size} is large for {n_train:,} training images: using {batch} (lr {cfg.lr:g} -> {lr:.4g})")
        cfg.batch_size, cfg.lr = batch, lr


def _check_trainable(data: PreparedData, train_split: Split) -> None:
    present = set(train_split.labels.tolist())
    missing = [c for i, c in enumerate(data.classes) if i not in present]
    if missing:
        raise DataError(
            f"class {missing[0]!r} has no image in the train split; add images of it or change the split"
        )


def _make_run_dir(out: Path, overwrite: bool) -> Run:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
        if not (out / "config.yaml").exists() and not (out / "model").exists():
            raise UserError(f"{out} does not look like an imgclf run; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return Run(out)
