"""From a configuration to the things that train: data, model, augmentation, loader, optimiser,
schedule, loss, mixing and weight averaging.

`imgclf train`, `imgclf lr-find` and `imgclf bench train` build through these functions, so a
preset or an option means the same in all three.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import Augment
from ..data.dataset import PreparedData, Split, prepare
from ..data.loader import BatchLoader
from ..data.preprocess import Preprocess
from ..errors import DataError, UserError
from ..inference.normalize import normalize
from ..models import create_model
from ..models.pretrained import Freezer, load_pretrained
from ..progress import log
from ..runs import Run
from .averaging import EMA, Lookahead
from .budget import Clock, StepPlan, parse_duration
from .callbacks import Callback, Callbacks
from .config import TrainConfig
from .context import TrainContext
from .distributed import local_main_first
from .engine import TrainStep
from .feature_cache import FeatureLoader, build_cached_features
from .losses import balanced_class_weights, make_criterion
from .mix import Mixer
from .optim import layer_decay_scales, make_optimizer
from .schedule import CycleSchedule
from .state import TrainState


def prepare_data(cfg: TrainConfig, preprocess: Preprocess, *, splits_from: Path | None = None) -> PreparedData:
    """Read, decode (through the cache) and split ``cfg.data``; ``splits_from`` reuses a
    splits.csv (a resumed run's own, or ``--splits``) instead of making a split."""
    # A resumed run keeps the split it was checked with at its start; anything else is checked
    # for duplicates across train and val/test now.
    leakage = "ignore" if splits_from is not None else "warn" if cfg.allow_leakage else "refuse"
    if splits_from is None and cfg.splits:
        splits_from = Path(cfg.splits).expanduser()
    with local_main_first():  # DDP hook: local rank 0 fills the decode cache, then the machine's other ranks read it
        return prepare(
            cfg.data, preprocess,
            val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed,
            group_column=cfg.group_column, cache_dir=cfg.cache_dir, splits_from=splits_from,
            group_duplicates=cfg.group_duplicates, leakage=leakage,
        )  # fmt: skip


def check_trainable(cfg: TrainConfig, data: PreparedData) -> None:
    """Refuse, before anything is trained, data that this configuration cannot train on."""
    present = set(data.split("train").labels.tolist())
    missing = [c for i, c in enumerate(data.classes) if i not in present]
    if missing:
        raise DataError(f"class {missing[0]!r} has no image in the train split; add images of it or change the split")
    if cfg.early_stopping and not len(data.split("val")):
        raise UserError("--early-stopping needs a validation split: set --val-fraction above 0 or add a val/ folder")


def fit_batch_size(cfg: TrainConfig, n_train: int) -> None:
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


def build_model(cfg: TrainConfig, num_classes: int, train_split: Split, preprocess: Preprocess, device, *, load_weights: bool = True):
    """The model ``cfg`` describes, on ``device`` in channels-last order, initialised from data
    where the architecture asks for it and from ``--pretrained`` weights; returns (model, the
    pretrained report or None)."""
    channels = {"in_chans": preprocess.channels} if preprocess.channels != 3 else {}  # a grayscale model's first layer
    model = create_model(
        cfg.model, num_classes, img_size=cfg.img_size, drop_rate=cfg.dropout, drop_path_rate=cfg.drop_path or None, **channels
    )
    _check_input_size(model, cfg.model, preprocess)
    model = model.to(device).to(memory_format=torch.channels_last)
    if hasattr(model, "data_init"):  # e.g. fast_cnn's whitening stem, computed from training images
        # A random sample: listings are often sorted by class, and one class's statistics are not the data's.
        pick = np.random.default_rng(cfg.seed).choice(len(train_split), min(5000, len(train_split)), replace=False)
        sample = train_split.pixels[np.sort(train_split.rows[pick])]
        model.data_init(normalize(torch.from_numpy(sample).to(device), preprocess.mean, preprocess.std))
    report = None
    if cfg.pretrained and load_weights:
        report = load_pretrained(model, cfg.pretrained, architecture=cfg.model)
    return model, report


def _check_input_size(model, name: str, preprocess: Preprocess) -> None:
    """One image through the new model (eval mode, on the CPU, milliseconds): an input too small
    for its poolings is one sentence here, not a traceback from inside the first training step."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, preprocess.channels, preprocess.img_size, preprocess.img_size))
    except RuntimeError as exc:
        raise UserError(
            f"{name} cannot take {preprocess.img_size} px images ({str(exc).splitlines()[0][:120]}); give a larger --img-size"
        ) from None
    finally:
        model.train(was_training)


def build_augment(cfg: TrainConfig) -> Augment:
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


def build_loader(cfg: TrainConfig, split: Split, device) -> BatchLoader:
    """Shuffled (or class-balanced), augmented training batches of ``split``."""
    return BatchLoader(
        split, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed, augment=build_augment(cfg), device=device,
        balanced=cfg.sampler == "balanced",
    )  # fmt: skip


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg``'s optimiser over ``model``'s parameter groups, with layer-wise rates when
    ``--layer-decay`` is below 1."""
    lr_scales = layer_decay_scales(model, cfg.layer_decay) if cfg.layer_decay < 1 else None
    return make_optimizer(model, cfg, lr_scales)


def build_step(
    cfg: TrainConfig, model: nn.Module, train_split: Split, num_classes: int, preprocess: Preprocess, device, precision: str,
    schedule: CycleSchedule | None = None,
) -> TrainStep:
    """Optimiser, learning-rate schedule (when ``schedule`` is given), loss, mixing and loss
    scaling, as ``cfg`` says."""
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor) if schedule is not None else None
    weights = balanced_class_weights(train_split.labels, num_classes).to(device) if cfg.class_weights == "auto" else None
    criterion = make_criterion(cfg.loss, label_smoothing=cfg.label_smoothing, class_weight=weights, gamma=cfg.focal_gamma)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    mixer = Mixer(num_classes, cfg.seed, mixup=cfg.mixup, cutmix=cfg.cutmix)
    return TrainStep(optimizer, criterion, preprocess.mean, preprocess.std, device, precision, scheduler, mixer, scaler)


def build_training(
    cfg: TrainConfig, run: Run, data: PreparedData, preprocess: Preprocess, device, precision: str, *,
    resume: bool, callbacks: list[Callback], clock: Clock, t_start: float,
) -> tuple[TrainContext, dict | None]:
    """Everything a run trains with; returns (the context, the pretrained-weights report or None)."""
    train_split = data.split("train")
    model, pretrained = build_model(cfg, len(data.classes), train_split, preprocess, device, load_weights=not resume)
    freezer = Freezer(model, cfg.freeze, cfg.freeze_epochs)
    features = build_cached_features(cfg, model, freezer, data, preprocess, device, precision, build_augment(cfg))
    loader = FeatureLoader(features, cfg, device, build_augment(cfg)) if features else build_loader(cfg, train_split, device)
    # The compiled module shares its parameters with ``model``: the optimiser, weight averaging
    # and the saved bundle all work on ``model`` itself (so does the part above a feature cut).
    step_model = features.view(model) if features else torch.compile(model) if cfg.compile else model
    plan = StepPlan(len(loader), cfg.epochs, parse_duration(cfg.time) if cfg.time else None, t_start, clock)
    state = TrainState()
    schedule = CycleSchedule(
        plan, state, warmup_steps=int(cfg.warmup_epochs * len(loader)), shape=cfg.schedule, start=cfg.lr_start_factor, end=cfg.lr_end_factor
    )
    step = build_step(cfg, model, train_split, len(data.classes), preprocess, device, precision, schedule)
    ctx = TrainContext(
        config=cfg, run=run, data=data, preprocess=preprocess, device=device, precision=precision, model=model,
        step_model=step_model, step=step, loader=loader, freezer=freezer, plan=plan, state=state,
        callbacks=Callbacks(callbacks), clock=clock, t_start=t_start,
        averager=Lookahead(model, plan.total) if cfg.weight_averaging == "lookahead" else None,
        ema=EMA(model, cfg.ema_decay) if cfg.weight_averaging == "ema" else None, features=features,
    )  # fmt: skip
    return ctx, pretrained


def describe_training(ctx: TrainContext) -> str:
    """The log line saying what trains: model, optimiser, length, augmentation, loss, sampler."""
    cfg, plan, step = ctx.config, ctx.plan, ctx.step
    params = sum(p.numel() for p in ctx.model.parameters())
    length = f"{cfg.epochs} epochs" if plan.budget is None else f"a {plan.budget:.0f}s budget"
    weighted = cfg.class_weights == "auto"
    return (
        f"model: {cfg.model} at {cfg.img_size}px, {params:,} parameters; {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, "
        f"{length} of {len(ctx.loader)} steps each; augmentation: {', '.join(ctx.loader.augment.describe() + step.mixer.describe())}"
        + (f"; loss {cfg.loss}" + (", class weights" if weighted else "") if cfg.loss != "ce" or weighted else "")
        + ("; balanced sampler" if cfg.sampler == "balanced" else "")
        + (f"; preset {cfg.preset}" if cfg.preset not in (None, "none") else "")
    )
