"""The training loop: prepare data, build the model, fit, validate each epoch, keep the best
model, and write the run directory.

One plain function per phase (:func:`train_one_epoch`, :func:`validate`), as in torchvision's
reference scripts; :func:`fit` strings them together.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import Augment
from ..data.dataset import PreparedData, Split, prepare
from ..data.loader import BatchLoader
from ..data.preprocess import Preprocess, normalize
from ..device import autocast, pick_device, pick_precision
from ..errors import DataError, UserError
from ..models import create_model, default_img_size, is_known
from ..models.bundle import save_bundle
from ..models.infer import logits_for_batches
from ..progress import log, make_progress
from ..runs import Run, append_jsonl, write_json, write_yaml
from .averaging import Lookahead
from .config import TrainConfig
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


def fit(config: TrainConfig, *, overwrite: bool = False) -> TrainResult:
    """Train a model as ``config`` says and write its run directory."""
    t_start = time.perf_counter()
    cfg = config.validate()
    if not is_known(cfg.model):
        create_model(cfg.model, 2)  # raises the UserError with suggestions
    cfg.img_size = cfg.img_size or default_img_size(cfg.model)
    run = _make_run_dir(Path(cfg.out), overwrite)
    torch.manual_seed(cfg.seed)

    preprocess = Preprocess(cfg.img_size)
    data = prepare(
        cfg.data, preprocess,
        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed,
        group_column=cfg.group_column, cache_dir=cfg.cache_dir,
    )  # fmt: skip
    train_split, val_split = data.split("train"), data.split("val")
    _check_trainable(data, train_split)
    _fit_batch_size(cfg, len(train_split))
    write_yaml(run.config, cfg.to_dict())
    write_json(run.data_report, data.report())
    data.write_splits_csv(run.splits)
    log(
        f"data: {len(data.samples):,} images read, {len(data.skipped)} skipped, {len(data.classes)} classes; "
        f"train {len(train_split):,} / val {len(val_split):,} / test {len(data.split('test')):,} ({data.split_method})"
        f" [{time.perf_counter() - t_start:.1f}s]"
    )

    device = pick_device(cfg.device)
    precision, why = pick_precision(cfg.precision, device)
    log(f"device: {device.type}, precision: {precision} ({why})")
    model = create_model(cfg.model, len(data.classes), img_size=cfg.img_size).to(device)
    model = model.to(memory_format=torch.channels_last)
    if hasattr(model, "data_init"):  # e.g. fast_cnn's whitening stem, computed from training images
        # A random sample: listings are often sorted by class, and one class's statistics are not the data's.
        pick = np.random.default_rng(cfg.seed).choice(len(train_split), min(5000, len(train_split)), replace=False)
        sample = train_split.pixels[np.sort(train_split.rows[pick])]
        model.data_init(normalize(torch.from_numpy(sample).to(device), preprocess.mean, preprocess.std))

    augment = Augment(
        cfg.img_size, flip=cfg.flip, alternating_flip=cfg.flip and cfg.alternating_flip,
        crop_padding=cfg.crop_padding, seed=cfg.seed,
    )  # fmt: skip
    loader = BatchLoader(
        train_split, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed, augment=augment, device=device
    )
    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.epochs * len(loader)
    warmup_steps = min(int(cfg.warmup_epochs * len(loader)), total_steps // 2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step, total_steps, warmup_steps, shape=cfg.schedule, start=cfg.lr_start_factor, end=cfg.lr_end_factor
        ),
    )
    averager = Lookahead(model, total_steps) if cfg.weight_averaging == "lookahead" else None
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    log(
        f"model: {cfg.model} at {cfg.img_size}px, {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs of {len(loader)} steps; "
        f"augmentation: {', '.join(augment.describe())}"
        + (f"; preset {cfg.preset}" if cfg.preset else "")
    )

    bundle_meta = dict(architecture=cfg.model, classes=data.classes, preprocess=preprocess.to_dict())
    best_acc, best_epoch, train_loss, step = -1.0, 0, math.nan, 0
    with make_progress() as bar:
        task = bar.add_task("training", total=total_steps, info="")
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loader.set_epoch(epoch)
            if hasattr(model, "set_epoch"):
                model.set_epoch(epoch - 1)
            last_epoch = epoch == cfg.epochs

            def on_step(loss_fn):
                nonlocal step
                step += 1
                if averager is not None:
                    averager.step(model, step)
                if bar.live.is_started and step % 10 == 0:  # reading the loss syncs a GPU: not every step
                    bar.update(task, completed=step, info=f"epoch {epoch}/{cfg.epochs} loss {loss_fn():.3f}")

            train_loss, train_acc = train_one_epoch(
                model, loader, optimizer, scheduler, criterion, preprocess, device, precision, on_step=on_step
            )
            if last_epoch and averager is not None:
                averager.finish(model)
            seconds = time.perf_counter() - t0
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": round(seconds, 3),
                "images_per_second": round(len(loader) * cfg.batch_size / seconds, 1),
            }
            if len(val_split):
                val_loss, val_acc = validate(model, val_split, preprocess, device, precision, cfg.batch_size)
                record.update(val_loss=val_loss, val_accuracy=val_acc)
            append_jsonl(run.metrics, record)
            # With a validation split the best epoch is kept; without one, the last. With weight
            # averaging only the final (averaged) weights count: mid-run weights are not comparable.
            score = record.get("val_accuracy", epoch) if averager is None else epoch
            improved = score > best_acc
            if improved:
                best_acc, best_epoch = score, epoch
                save_bundle(
                    model, run.model_dir, **bundle_meta,
                    extra={"epoch": epoch, "val_accuracy": record.get("val_accuracy"), "tta": cfg.tta},
                )  # fmt: skip
            log(
                f"epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4f} acc {train_acc:.3f}"
                + (f", val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.3f}" if "val_accuracy" in record else "")
                + f" ({seconds:.1f}s, {record['images_per_second']:.0f} img/s)"
                + (" *best*" if improved and "val_accuracy" in record and averager is None else "")
            )
    final_val = record.get("val_accuracy") if averager is not None else (best_acc if len(val_split) else None)
    return TrainResult(
        run_dir=run.root,
        epochs=cfg.epochs,
        best_epoch=best_epoch,
        best_val_accuracy=final_val,
        final_train_loss=train_loss,
        seconds=time.perf_counter() - t_start,
        images_read=len(data.samples),
        images_skipped=len(data.skipped),
        split_sizes={s: len(data.split(s)) for s in ("train", "val", "test")},
        precision=precision,
        config=cfg,
    )


def train_one_epoch(model, loader, optimizer, scheduler, criterion, preprocess, device, precision, on_step=None):
    """One pass over ``loader``; returns (mean loss, accuracy). Losses stay on the device until
    the end of the epoch, so a GPU never waits for the host."""
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in loader:
        x = normalize(x.to(device, non_blocking=True), preprocess.mean, preprocess.std)
        y = y.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if on_step:
            on_step(loss.item)
    mean_loss = total_loss.item() / max(1, seen)
    if not math.isfinite(mean_loss):
        raise UserError(
            f"training diverged (loss {mean_loss}); lower the learning rate (now {optimizer.param_groups[0]['lr']:.2g})"
        )
    return mean_loss, correct.item() / max(1, seen)


def validate(model, split: Split, preprocess: Preprocess, device, precision, batch_size) -> tuple[float, float]:
    logits = logits_for_batches(
        model,
        (x for x, _ in BatchLoader(split, max(batch_size, 256), device=device)),
        mean=preprocess.mean, std=preprocess.std, device=device,
        autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
    )  # fmt: skip
    y = split.labels
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    return loss, float(np.mean(logits.argmax(1) == y))


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
