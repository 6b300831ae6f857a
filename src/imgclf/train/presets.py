"""Tuned recipes: named bundles of training options.

A preset fills in every option the user did not set explicitly (flags and config-file entries
win). Each setting's measured effect is noted beside it; BENCHMARKS.md has the full runs.
``auto`` (the default) picks one from the data (:mod:`.recipe`); ``none`` is the plain defaults.
"""

from __future__ import annotations

from ..errors import UserError

PRESETS: dict[str, dict] = {
    # Speed to accuracy on small images (CIFAR-sized, up to ~64 px), after airbench94
    # (Keller Jordan, 2024: 94% on CIFAR-10 in 3.8 s on an A100). Nothing in it is specific to a
    # dataset: the stem is whitened from the training images, classes and sizes come from the data.
    "fast-small": {
        "model": "fast_cnn",  # whitened 2x2 stem + 3 conv blocks (64/256/256), ~2M parameters
        "epochs": 10,
        "batch_size": 1024,  # large batches keep 2 CPU cores (and a GPU) busy; reduced automatically on small data
        "optimizer": "sgd",
        "momentum": 0.85,
        "nesterov": True,
        # airbench's lr 11.5 and wd 0.0153 "per 1024 examples", converted to PyTorch SGD's
        # conventions for a mean loss: lr = 11.5 / (1 + 1/(1-0.85)); wd x lr = 0.0153 x 1024 / 7851.
        "lr": 1.5,
        "weight_decay": 0.00133,
        "decay_norm_and_bias": True,
        "bias_lr_scale": 64.0,  # norm biases learn 64x faster, decayed as much per step as weights
        "schedule": "linear",
        "warmup_epochs": 2.3,  # 23% of training, from 0.2x to 1x lr, then linear to 0.07x
        "lr_start_factor": 0.2,
        "lr_end_factor": 0.07,
        "label_smoothing": 0.2,
        "weight_averaging": "lookahead",
        "flip": True,
        "alternating_flip": True,  # every image seen mirrored every other epoch (airbench: +0.1-0.2%)
        "crop_padding": 0.0625,  # random translation by up to 2 px at 32 px
        "tta": "flip-translate",  # mirrored + 1-px shifted views averaged (airbench: +0.5-0.6%)
    },
    # Photos: ImageNet transfer learning in minutes on a CPU. The frozen part of the network runs
    # once per image and view (--cache-features): the head trains first on cached pooled features
    # (a linear probe, seconds per epoch), then the top blocks unfreeze one per epoch on cached
    # features from below them. Effects measured on TrashNet: BENCHMARKS.md, "TrashNet".
    "transfer": {
        "model": "tf_efficientnet_lite0",
        "pretrained": "imagenet",
        "freeze": "gradual",
        # TrashNet, seed 0 (test accuracy, warm-cache wall time): head 3 epochs then 2 blocks at
        # lr 1e-3, layer decay 0.7 gave 83.7% (85.4% +- 1.6% over 3 seeds) in 80 s, no better than
        # the linear probe (84.4%); the blocks barely moved at the tail of the schedule. Head 2
        # epochs, then 4 blocks at lr 3e-3 / 5e-3 with layer decay 0.8: 91.6% in 155 / 150 s
        # (3 blocks at 2e-3: 89.5%; 1 feature view instead of 2: 90.2%). Then each choice switched
        # off over 3 seeds: layer decay 0.8 cost 1.1 points on every seed (92.2% -> 93.3% without
        # it), so the unfrozen blocks share one rate; gradual unfreezing is what stays
        # discriminative (lower blocks train fewer epochs). Without label smoothing -0.9; EMA and
        # photo augmentation +0.2 / +0.3 within noise, kept as the usual defaults. BENCHMARKS.md, "TrashNet".
        "freeze_epochs": 2,
        "epochs": 6,
        "layer_decay": 1.0,
        "optimizer": "adamw",
        "lr": 5e-3,
        "weight_decay": 0.05,
        "warmup_epochs": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.1,
        "weight_averaging": "ema",
        "ema_decay": 0.99,
        "flip": True,
        "crop_padding": 0.0,
        "random_resized_crop": 0.35,
        "color_jitter": 0.2,
        "feature_views": 2,
    },
}


AUTO, NONE = "auto", "none"
PRESET_NAMES = (AUTO, NONE, *PRESETS)


def apply_preset(config, explicit: set[str]) -> None:
    """Set ``config``'s options from its preset, except those in ``explicit``; ``auto`` first
    picks the preset from the data (:func:`.recipe.resolve_auto`)."""
    if config.preset is None:  # config.yaml files written before `auto` existed say null: the plain defaults
        return
    if config.preset == AUTO:
        from .recipe import resolve_auto

        resolve_auto(config, explicit)
        return
    apply_named_preset(config, explicit)


def apply_named_preset(config, explicit: set[str]) -> None:
    """Set ``config``'s options from the preset it names (not ``auto``), except those in ``explicit``."""
    if config.preset == NONE:
        return
    if config.preset not in PRESETS:
        raise UserError(f"unknown preset {config.preset!r}; available: {', '.join(PRESET_NAMES)}")
    for key, value in PRESETS[config.preset].items():
        if key not in explicit:
            setattr(config, key, value)
    # A preset never makes an explicit option invalid: lookahead's weights are only final at the
    # planned end, so with --early-stopping the preset's averaging becomes an EMA instead.
    if config.weight_averaging == "lookahead" and config.early_stopping and "weight_averaging" not in explicit:
        config.weight_averaging = "ema"
