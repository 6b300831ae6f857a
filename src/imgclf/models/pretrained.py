"""Transfer learning: start from existing weights, replace the head, freeze and unfreeze.

Weights come from a local file (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with
``weights_only=True``), a previous imgclf run, ``imagenet`` (ImageNet-1k weights installed as
Python packages, :mod:`.imagenet`: no network at all) or ``timm`` (timm's published weights, read
from the local Hugging Face cache only: imgclf never downloads at training time). Tensors whose name
and shape fit the new model are loaded unchanged; the rest (the old classifier head) are
reported and left freshly initialised.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import UserError
from .bundle import read_bundle_meta
from .imagenet import imagenet_preprocess, imagenet_weights


def load_pretrained(model: nn.Module, source: str, *, architecture: str) -> dict:
    """Load ``source`` into ``model`` where names and shapes fit; returns what was loaded."""
    state = _read(source, architecture)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise UserError(
            f"none of the {len(state)} tensors in {source} fit {architecture}; "
            "pretrained weights must come from the same architecture"
        )
    model.load_state_dict(fits, strict=False)
    _zero_new_head(model, set(own) - set(fits))
    return {
        "source": source,
        "loaded": sorted(fits),
        "skipped": sorted(k for k in state if k not in fits),  # e.g. the old head, other classes
        "initialised": sorted(k for k in own if k not in fits),
    }


def _zero_new_head(model: nn.Module, initialised: set[str]) -> None:
    """Start a new head at zero on pretrained features, as Big Transfer does (Kolesnikov et al.,
    2020). timm initialises EfficientNet's classifier uniformly in +-1/sqrt(classes): +-0.58 for
    3 classes, which on lite0's pooled features (norm about 16 on TrashNet) gives first logits
    with a standard deviation near 5 (a first-epoch loss of 15 on a synthetic 3-class probe);
    from zero, every class starts equally likely."""
    try:
        head = head_module(model)
    except UserError:
        return
    names = {n for n, m in model.named_modules() if m is head}
    for name, param in head.named_parameters():
        if any(f"{prefix}.{name}" in initialised for prefix in names):
            with torch.no_grad():
                param.zero_()


def _read(source: str, architecture: str) -> dict[str, torch.Tensor]:
    if source == "imagenet":
        return imagenet_weights(architecture)
    if source == "timm":
        return _from_hf_cache(architecture)
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"--pretrained {source}: no such file or run directory (or 'imagenet' / 'timm')")
    if path.is_dir():
        bundle = path / "model" if (path / "model" / "model.json").exists() else path
        meta = read_bundle_meta(bundle)
        if meta["architecture"] != architecture:
            raise UserError(
                f"--pretrained {source} holds a {meta['architecture']}, not a {architecture}; "
                f"train with --model {meta['architecture']} to start from it"
            )
        return load_file(str(bundle / "model.safetensors"))
    if path.suffix == ".safetensors":
        return load_file(str(path))
    if path.suffix in (".pth", ".pt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
        except Exception as exc:  # noqa: BLE001 - a pickle with code objects, a damaged file
            raise UserError(f"cannot read {source} as plain weights ({str(exc).splitlines()[0]})") from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
            raise UserError(f"{source} does not hold a state dict of tensors")
        return {k.removeprefix("module."): v for k, v in obj.items()}
    raise UserError(f"--pretrained {source}: expected a .safetensors/.pth/.bin file, a run directory, 'imagenet' or 'timm'")


def _from_hf_cache(architecture: str) -> dict[str, torch.Tensor]:
    from huggingface_hub import constants, try_to_load_from_cache

    cfg = timm.get_pretrained_cfg(architecture) if timm.is_model(architecture) else None
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise UserError(f"timm publishes no pretrained weights for {architecture!r}; use a local file or a run")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return _read(found, architecture)
    raise UserError(
        f"timm's weights for {architecture} ({repo}) are not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}); download them where there is internet "
        f"(`huggingface-cli download {repo}`) and copy that cache here, or pass a local file: "
        "--pretrained path/to/model.safetensors"
        + (" (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else "")
    )


def pretrained_preprocess(source: str, architecture: str) -> dict | None:
    """The normalisation the weights of ``source`` were trained with: ``{"mean", "std",
    "interpolation"}``, or None when nothing is known (imgclf then uses ImageNet's statistics).

    ``imagenet``: the packaged weights' own TF preprocessing (mean 127/255, std 128/255, bicubic;
    timm's pretrained_cfg rounds these to 0.5/0.5, which the weights were not trained with). A
    previous run: the preprocessing recorded in its model.json. ``timm`` or a weights file for a
    timm architecture: timm's ``pretrained_cfg`` for that architecture (what ``model.pretrained_cfg``
    holds, and what timm itself assumes for a file of its weights); a file for one of imgclf's
    compact nets: nothing known.
    """
    if source == "imagenet":
        pre = imagenet_preprocess(architecture)
        return {k: pre[k] for k in ("mean", "std", "interpolation")}
    path = Path(source).expanduser()
    if source != "timm" and path.is_dir():
        bundle = path / "model" if (path / "model" / "model.json").exists() else path
        pre = read_bundle_meta(bundle).get("preprocess") or {}
        stats = {k: pre[k] for k in ("mean", "std", "interpolation") if k in pre}
        return stats if "mean" in stats and "std" in stats else None
    cfg = timm.get_pretrained_cfg(architecture) if timm.is_model(architecture) else None
    if cfg is None or not getattr(cfg, "mean", None) or not getattr(cfg, "std", None):
        return None
    stats = {"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std]}
    if getattr(cfg, "interpolation", None) in ("bilinear", "bicubic"):  # the resamplers Preprocess has
        stats["interpolation"] = cfg.interpolation
    return stats


def head_module(model: nn.Module) -> nn.Module:
    """The classifier head that transfer learning replaces and trains first."""
    if hasattr(model, "get_classifier"):
        return model.get_classifier()
    if hasattr(model, "fc"):
        return model.fc
    raise UserError(f"{type(model).__name__} has no identifiable classifier head to train alone")


def backbone_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's parameters in blocks, input first: timm's own grouping (its layer-decay
    groups), or the model's top-level children for imgclf's compact nets."""
    head = {id(p) for p in head_module(model).parameters()}
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        named = dict(model.named_parameters())
        grouped = group_parameters(model, model.group_matcher(coarse=True))
        groups = [[named[n] for n in names if id(named[n]) not in head] for _, names in sorted(grouped.items())]
    else:
        groups = [[p for p in child.parameters() if id(p) not in head] for child in model.children()]
    return [g for g in groups if g]


class Freezer:
    """``none`` | ``head-only`` (the backbone stays frozen: a linear probe) | ``gradual`` (the head
    alone for ``head_epochs``, then one more backbone block per epoch, from the top down).

    Frozen blocks keep their batch-norm statistics: their norm layers stay in eval mode. Parameters
    a model freezes by design (fast_cnn's whitening stem) are never unfrozen. ``max_unfrozen``
    caps how many blocks ``gradual`` ever unfreezes (cached features below them: a time budget
    that plans more epochs than the configuration's keeps the blocks below frozen).
    """

    def __init__(self, model: nn.Module, mode: str, head_epochs: int = 1):
        self.model, self.mode, self.head_epochs = model, mode, head_epochs
        self.head = list(head_module(model).parameters()) if mode != "none" else []
        self.groups = backbone_groups(model) if mode != "none" else []
        self.trainable_by_design = {id(p) for p in model.parameters() if p.requires_grad}
        self.frozen: set[int] = set()
        self.max_unfrozen: int | None = None

    def deepest_unfrozen(self) -> int:
        """How many backbone blocks (from the top) train in some epoch of the run."""
        if self.mode == "head-only":
            return 0
        return len(self.groups) if self.max_unfrozen is None else min(len(self.groups), self.max_unfrozen)

    def frozen_groups(self, epoch: int) -> int:
        """How many backbone blocks (from the bottom) are frozen in ``epoch`` (1-based)."""
        if self.mode == "none":
            return 0
        unfrozen = 0 if self.mode == "head-only" else min(self.deepest_unfrozen(), max(0, epoch - self.head_epochs))
        return len(self.groups) - unfrozen

    def apply(self, epoch: int) -> str | None:
        """Set requires_grad for ``epoch``; returns a description when something changed."""
        if self.mode == "none":
            return None
        n = self.frozen_groups(epoch)
        frozen = {id(p) for g in self.groups[:n] for p in g}
        changed = frozen != self.frozen
        self.frozen = frozen
        for p in self.model.parameters():
            if id(p) in self.trainable_by_design:
                p.requires_grad_(id(p) not in frozen)
        if changed:
            return f"backbone: {n} of {len(self.groups)} blocks frozen" if n else "backbone: all blocks trainable"
        return None

    def freeze_norm_stats(self) -> None:
        """After ``model.train()``: norm layers whose parameters are all frozen stop updating."""
        if not self.frozen:
            return
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                params = list(m.parameters(recurse=False))
                if params and all(id(p) in self.frozen for p in params):
                    m.eval()
