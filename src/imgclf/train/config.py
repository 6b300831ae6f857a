"""The training configuration: every option of `imgclf train`, its default, and its meaning.

The resolved configuration is written to ``config.yaml`` in the run directory, and
``imgclf train --config config.yaml`` reads it back to reproduce the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ..errors import UserError


@dataclass
class TrainConfig:
    data: str = field(default="", metadata={"help": "folder, .zip, .csv/.jsonl manifest or builtin:NAME"})
    out: str = field(default="", metadata={"help": "the run directory to create"})
    preset: str | None = field(default=None, metadata={"help": "a tuned recipe whose settings apply unless given explicitly: fast-small (small images, speed to accuracy)"})
    model: str = field(default="simple_cnn", metadata={"help": "a compact net (`imgclf models`) or any timm model name"})
    epochs: int = field(default=10, metadata={"help": "passes over the training split"})
    time: str | None = field(default=None, metadata={"help": "a time budget instead of --epochs, e.g. 10m: the schedule is planned to end within it (data preparation included)"})
    img_size: int | None = field(default=None, metadata={"help": "input size in pixels (default: the model's native size, 32 for compact nets, 224 for most timm)"})
    batch_size: int = field(default=64, metadata={"help": "images per optimiser step"})
    pretrained: str | None = field(default=None, metadata={"help": "start from weights: a .safetensors/.pth/.bin file, a previous run directory, or timm (from the local Hugging Face cache)"})
    freeze: str = field(default="none", metadata={"help": "none | head-only (backbone frozen) | gradual (head first, then unfreeze one block per epoch from the top)"})
    freeze_epochs: int = field(default=1, metadata={"help": "epochs of training the head alone before --freeze gradual unfreezes"})
    layer_decay: float = field(default=1.0, metadata={"help": "discriminative learning rates: each backbone block below the head gets this factor more (1: off)"})
    optimizer: str = field(default="adamw", metadata={"help": "adamw | adam | sgd (Nesterov momentum) | rmsprop"})
    lr: float | str = field(default=2e-3, metadata={"help": "peak learning rate, reached after warmup; auto: run the LR range test first (see imgclf lr-find)"})
    momentum: float = field(default=0.9, metadata={"help": "momentum of sgd and rmsprop"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum for sgd"})
    weight_decay: float = field(default=0.05, metadata={"help": "decoupled for adamw, L2 for the others"})
    decay_norm_and_bias: bool = field(default=False, metadata={"help": "also decay normalisation and bias parameters"})
    bias_lr_scale: float = field(default=1.0, metadata={"help": "learning-rate multiplier for normalisation and bias parameters"})
    schedule: str = field(default="cosine", metadata={"help": "cosine | linear: the decay after warmup"})
    warmup_epochs: float = field(default=1.0, metadata={"help": "epochs of linear warmup from lr x lr-start-factor"})
    lr_start_factor: float = field(default=0.01, metadata={"help": "learning rate at the start of warmup, as a fraction of --lr"})
    lr_end_factor: float = field(default=0.0, metadata={"help": "learning rate at the end, as a fraction of --lr"})
    weight_averaging: str = field(default="none", metadata={"help": "none | ema (evaluate and save an exponential moving average) | lookahead (pull weights towards a slow average every 5 steps)"})
    ema_decay: float = field(default=0.999, metadata={"help": "per-step decay of --weight-averaging ema"})
    dropout: float | None = field(default=None, metadata={"help": "dropout before the classifier (default: the model's own)"})
    drop_path: float = field(default=0.0, metadata={"help": "stochastic depth rate, for timm models that support it"})
    loss: str = field(default="ce", metadata={"help": "ce (cross-entropy) | focal (down-weights easy examples; for imbalance)"})
    focal_gamma: float = field(default=2.0, metadata={"help": "focusing exponent of the focal loss"})
    class_weights: str = field(default="none", metadata={"help": "none | auto: weight each class by n / (classes x its count)"})
    sampler: str = field(default="shuffle", metadata={"help": "shuffle | balanced: draw every class equally often (with replacement)"})
    label_smoothing: float = field(default=0.0, metadata={"help": "spread this much target probability over all classes"})
    flip: bool = field(default=True, metadata={"help": "random horizontal flips"})
    alternating_flip: bool = field(default=False, metadata={"help": "flip each image every other epoch instead of at random"})
    crop_padding: float = field(default=0.125, metadata={"help": "random crop after padding by this fraction of the size (0: off)"})
    random_resized_crop: float = field(default=0.0, metadata={"help": "random resized crop keeping this much of the area at least, e.g. 0.35 (0: off)"})
    rotation: float = field(default=0.0, metadata={"help": "random rotation up to this many degrees (0: off)"})
    perspective: float = field(default=0.0, metadata={"help": "random perspective distortion, 0..1 (0: off)"})
    color_jitter: float = field(default=0.0, metadata={"help": "brightness, contrast and saturation jitter strength, e.g. 0.4 (0: off)"})
    noise: float = field(default=0.0, metadata={"help": "Gaussian pixel noise std in 0..255 units (0: off)"})
    erasing: float = field(default=0.0, metadata={"help": "probability of erasing a random rectangle per image (0: off)"})
    auto_augment: str = field(default="none", metadata={"help": "none | trivial (TrivialAugmentWide) | rand (RandAugment, 2 ops, magnitude 9)"})
    mixup: float = field(default=0.0, metadata={"help": "mixup alpha (0: off); with --cutmix too, each batch uses one"})
    cutmix: float = field(default=0.0, metadata={"help": "cutmix alpha (0: off)"})
    early_stopping: int = field(default=0, metadata={"help": "stop after this many epochs without improvement of --monitor (0: off)"})
    monitor: str = field(default="val_accuracy", metadata={"help": "val_accuracy | val_balanced_accuracy | val_loss: picks the best epoch and drives early stopping"})
    tta: str = field(default="none", metadata={"help": "test-time augmentation at evaluation and prediction: none | flip | flip-translate"})
    val_fraction: float = field(default=0.1, metadata={"help": "used when the data has no predefined val split"})
    test_fraction: float = field(default=0.1, metadata={"help": "used when the data has no predefined test split"})
    group_column: str | None = field(default=None, metadata={"help": "keep each value of this manifest column in one split"})
    splits: str | None = field(default=None, metadata={"help": "reuse the split (and labels) of this splits.csv, e.g. another run's, instead of making one; images it does not list are left out"})
    seed: int = field(default=0, metadata={"help": "seeds the split, initialisation, order and augmentation"})
    precision: str = field(default="auto", metadata={"help": "auto | fp32 | bf16 | fp16: auto picks bf16 autocast where the hardware supports it; fp16 uses loss scaling"})
    checkpoint_every: int = field(default=0, metadata={"help": "also checkpoint every this many steps within an epoch (0: at epoch ends only)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model: slower start, faster steps where it helps (see BENCHMARKS.md)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    cache_dir: str | None = field(default=None, metadata={"help": "decoded-image cache (default: $IMGCLF_CACHE_DIR or ~/.cache/imgclf)"})

    def validate(self) -> "TrainConfig":
        if not self.data:
            raise UserError("no data given: pass a folder, zip, manifest or builtin:digits")
        if not self.out:
            raise UserError("no output folder given: pass --out runs/NAME")
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                self.lr = float(self.lr)
            except ValueError:
                raise UserError(f"--lr {self.lr!r}: give a number or auto") from None
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr == "auto" or self.lr > 0, "--lr must be positive (or auto)"),
            (self.img_size is None or 8 <= self.img_size <= 2048, "--img-size must be between 8 and 2048"),
            (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1, "split fractions must be in [0, 1)"),
            (self.val_fraction + self.test_fraction < 1, "val and test fractions must leave images for training"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (0 <= self.crop_padding <= 0.5, "--crop-padding must be in [0, 0.5]"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "--precision must be auto, fp32, bf16 or fp16"),
            (self.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (self.optimizer in ("adamw", "adam", "sgd", "rmsprop"), "--optimizer must be adamw, adam, sgd or rmsprop"),
            (self.schedule in ("cosine", "linear", "onecycle", "step"), "--schedule must be cosine, linear, onecycle or step"),
            (self.weight_averaging in ("none", "ema", "lookahead"), "--weight-averaging must be none, ema or lookahead"),
            (0 < self.ema_decay < 1, "--ema-decay must be between 0 and 1"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.drop_path < 1, "--drop-path must be in [0, 1)"),
            (self.tta in ("none", "flip", "flip-translate"), "--tta must be none, flip or flip-translate"),
            (self.auto_augment in ("none", "trivial", "rand"), "--auto-augment must be none, trivial or rand"),
            (self.loss in ("ce", "focal"), "--loss must be ce or focal"),
            (self.freeze in ("none", "head-only", "gradual"), "--freeze must be none, head-only or gradual"),
            (self.freeze_epochs >= 0, "--freeze-epochs must not be negative"),
            (0 < self.layer_decay <= 1, "--layer-decay must be in (0, 1]"),
            (self.monitor in ("val_accuracy", "val_balanced_accuracy", "val_loss"), "--monitor must be val_accuracy, val_balanced_accuracy or val_loss"),
            (self.early_stopping >= 0, "--early-stopping must not be negative"),
            (self.checkpoint_every >= 0, "--checkpoint-every must not be negative"),
            (not (self.early_stopping and self.weight_averaging == "lookahead"),
             "--early-stopping cannot be combined with --weight-averaging lookahead: its weights are only final at the planned end"),
            (self.class_weights in ("none", "auto"), "--class-weights must be none or auto"),
            (self.sampler in ("shuffle", "balanced"), "--sampler must be shuffle or balanced"),
            (0 <= self.random_resized_crop <= 1, "--random-resized-crop must be in [0, 1]"),
            (0 <= self.perspective <= 1, "--perspective must be in [0, 1]"),
            (0 <= self.erasing <= 1, "--erasing must be in [0, 1]"),
            (min(self.rotation, self.color_jitter, self.noise, self.mixup, self.cutmix, self.focal_gamma) >= 0,
             "augmentation strengths, mixup/cutmix alphas and --focal-gamma must not be negative"),
            (self.warmup_epochs >= 0, "--warmup-epochs must not be negative"),
            (self.bias_lr_scale > 0, "--bias-lr-scale must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def options(cls) -> list:
        """The dataclass fields that are command-line options (all but data and out)."""
        return [f for f in fields(cls) if f.name not in ("data", "out")]

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown option(s) in config: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(cls._read_yaml(path))

    @classmethod
    def keys_in_yaml(cls, path: str | Path) -> list[str]:
        return list(cls._read_yaml(path))

    @staticmethod
    def _read_yaml(path: str | Path) -> dict:
        p = Path(path)
        if not p.exists():
            raise UserError(f"config file {path} does not exist")
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML ({exc})") from None
        if not isinstance(d, dict):
            raise UserError(f"{path} must hold a mapping of option: value")
        return d
