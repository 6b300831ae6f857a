"""``--cache-features``: the frozen part of a network runs once per image and view, not every step.

With ``--freeze head-only`` (a linear probe) or ``--freeze gradual``, the layers below the deepest
block that will ever train never change. Their outputs are computed once, before the first
epoch, for every training image in ``--feature-views`` views (view 0 as it is, the others through
the run's augmentation; each epoch draws one view per image) and for the validation images; the
rest of the network trains on those stored outputs:

- while only the head trains, batches are the head's input (pooled features): an epoch is a few
  small matrix products (a linear probe's epoch takes well under a second where back-propagating
  through the frozen network took minutes; BENCHMARKS.md, TrashNet);
- once blocks unfreeze, batches are the activations at the cut below the deepest of them, and
  only the layers above run (:class:`~imgclf.models.feature_cut.UpperModel`).

The saved bundle is still the whole network. Nothing is cached where it would change what is
trained: with mixup or cutmix (they mix pixels), when every layer trains, for a model whose head
cannot be read separately (checked by comparing logits on real images), and above
``MAX_FEATURE_BYTES``; training then runs the frozen layers every step, as without the option.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.dataset import PreparedData, Split
from ..data.loader import BatchLoader
from ..data.preprocess import Preprocess
from ..inference.normalize import normalize
from ..inference.precision import autocast
from ..models.feature_cut import UpperModel, first_trainable_layer, lower_and_pooled
from ..models.pretrained import Freezer
from ..progress import log
from .config import TrainConfig
from .frozen_onnx import frozen_runner

# Stored features beyond this stay uncached (training then runs the frozen layers every step).
# TrashNet at 224 px, 2 views, cut below EfficientNet-Lite0's last 5 blocks: about 0.2 GB.
MAX_FEATURE_BYTES = 4 << 30
_EXTRACT_BATCH = 64


@dataclass
class FeatureSet:
    """Stored features of one split: ``cut`` (views, images, C, H, W) or None, ``pooled`` (views, images, D)."""

    cut: torch.Tensor | None
    pooled: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


class CachedFeatures:
    """The cached outputs of a run's frozen layers and how to train and validate on them.

    They are computed on first use (the first training batch), so a resumed run computes them
    from the weights its checkpoint restored, not from the freshly built model's."""

    def __init__(self, model: nn.Module, start: int | None, freezer: Freezer, source: dict):
        self.model, self.start, self.freezer, self._source = model, start, freezer, source
        self.train: FeatureSet | None = None
        self.val: FeatureSet | None = None

    def ensure(self) -> None:
        """Compute the features now, unless they are already there."""
        if self.train is not None:
            return
        t0, s, c = time.perf_counter(), self._source, self._source["common"]
        with _eval_mode(self.model):
            first = torch.from_numpy(s["train"].pixels[s["train"].rows[:8]])
            run = frozen_runner(self.model, self.start, c["preprocess"], c["device"], c["precision"], first)
            self.train = _extract(run, s["train"], s["views"], s["augment"], c["seed"], c["shapes"], c["dtype"])
            self.val = _extract(run, s["val"], 1, None, c["seed"], c["shapes"], c["dtype"])
        where = "the head's input" if self.start is None else f"layer {self.start} of the backbone (and the head's input)"
        log(f"features: {len(self.train):,} training images x {s['views']} view(s) + {len(self.val):,} validation images through the "
            f"frozen layers, cached at {where}: {s['bytes'] / 2**20:.0f} MB in {time.perf_counter() - t0:.1f}s")  # fmt: skip

    def level(self, epoch: int) -> str:
        """``pooled`` while only the head trains in ``epoch``, else ``cut``."""
        if self.start is None or self.freezer.frozen_groups(epoch) >= len(self.freezer.groups):
            return "pooled"
        return "cut"

    def view(self, model: nn.Module) -> UpperModel:
        """``model`` (or its moving average) above the cut: what trains and validates on the features."""
        return UpperModel(model, self.start)

    @torch.no_grad()
    def validate(self, model: nn.Module, epoch: int, device: torch.device, precision: str) -> dict[str, float]:
        """The validation metrics of :func:`~imgclf.train.engine.validate`, from the cached validation features."""
        self.ensure()
        upper = self.view(model).eval()
        store = self.val.pooled[0] if self.level(epoch) == "pooled" else self.val.cut[0]
        logits = []
        for i in range(0, len(self.val), 256):
            with autocast(device, precision):
                logits.append(upper(_as_input(store[i : i + 256], device)).float().cpu())
        out, y = torch.cat(logits), self.val.labels
        correct = (out.argmax(1) == y).numpy()
        labels = y.numpy()
        balanced = float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))
        return {"val_loss": nn.functional.cross_entropy(out, y).item(), "val_accuracy": float(correct.mean()),
                "val_balanced_accuracy": balanced}  # fmt: skip


class FeatureLoader:
    """Training batches of cached features, with :class:`~imgclf.data.loader.BatchLoader`'s
    interface (epochs, resumable position, the augmentation that made the views)."""

    def __init__(self, features: CachedFeatures, cfg: TrainConfig, device: torch.device, augment):
        self.features, self.batch_size, self.seed, self.device = features, cfg.batch_size, cfg.seed, device
        self.balanced = cfg.sampler == "balanced"
        self.augment = augment  # what made views 1.. (described in the run's log line)
        self.labels = torch.from_numpy(features._source["train"].labels)
        self.drop_last = len(self.labels) > self.batch_size
        self.epoch, self.generator, self._resume = 0, None, None

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, batch: int, generator_state: torch.Tensor) -> None:
        self._resume = (batch, generator_state)

    def __iter__(self):
        self.features.ensure()
        train = self.features.train
        n, views = len(train), train.pooled.shape[0]
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.balanced:  # as BatchLoader: every class equally likely, with replacement
            p = 1.0 / np.bincount(train.labels.numpy())[train.labels.numpy()]
            order = rng.choice(n, size=n, replace=True, p=p / p.sum())
        else:
            order = rng.permutation(n)
        view = rng.integers(views, size=n)  # one stored view per image and epoch
        # Draws nothing (the views are fixed): kept so checkpoints hold a loader state as BatchLoader's do.
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        start = 0
        if self._resume is not None:
            (start, state), self._resume = self._resume, None
            self.generator.set_state(state)
        store = train.pooled if self.features.level(self.epoch) == "pooled" else train.cut
        for b in range(start, len(self)):
            idx = torch.from_numpy(order[b * self.batch_size : (b + 1) * self.batch_size])
            yield _as_input(store[torch.from_numpy(view)[idx], idx], self.device), train.labels[idx]


def _as_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True).float()
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def why_not_cached(cfg: TrainConfig) -> str | None:
    """Why ``cfg`` trains without cached features (None: it can use them)."""
    if not cfg.cache_features or cfg.freeze == "none":
        return "off" if not cfg.cache_features else "every layer trains"
    if cfg.mixup or cfg.cutmix:
        return "mixup and cutmix mix pixels, which cached features cannot"
    if getattr(cfg, "nproc", 1) > 1:
        return "one process per run only"
    return None


def build_cached_features(
    cfg: TrainConfig, model: nn.Module, freezer: Freezer, data: PreparedData, preprocess: Preprocess, device, precision: str, augment
) -> CachedFeatures | None:
    """The cached features ``cfg`` trains on (computed on first use), or None (with a log line
    saying why, unless caching was not asked for) when training must run the frozen layers every step."""
    why = why_not_cached(cfg)
    if why is None:
        if freezer.mode == "gradual":
            freezer.max_unfrozen = max(0, cfg.epochs - cfg.freeze_epochs)  # --time may plan more epochs: the cut holds
        trainable = {id(p) for g in freezer.groups[len(freezer.groups) - freezer.deepest_unfrozen() :] for p in g}
        start = first_trainable_layer(model, trainable) if trainable else None
        if trainable and start is None:
            why = f"{cfg.model}'s layers cannot be cut below its trainable blocks"
    train_split, val_split = data.split("train"), data.split("val")
    if why is None:
        with _eval_mode(model):
            if not _head_reads_back(model, start, train_split, preprocess, device):
                why = f"{cfg.model}'s output is not its head's output on cached features"
            shapes = _feature_shapes(model, start, preprocess, device)
    if why is None:
        # Stored in the precision the layers above compute in: bf16 halves the memory and loses nothing they would keep.
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        item = torch.empty((), dtype=dtype).element_size()
        total = sum(int(np.prod(s)) * item for s in shapes if s is not None) * (cfg.feature_views * len(train_split) + len(val_split))
        if total > MAX_FEATURE_BYTES:
            why = f"{total / 2**30:.1f} GiB > {MAX_FEATURE_BYTES / 2**30:.0f} GiB"
    if why is not None:
        if freezer.mode == "gradual":
            freezer.max_unfrozen = None
        if why != "off" and cfg.freeze != "none":
            log(f"features: not cached ({why}); the frozen layers run every step")
        return None
    common = {"preprocess": preprocess, "device": device, "precision": precision, "seed": cfg.seed, "shapes": shapes, "dtype": dtype}
    source = {"train": train_split, "val": val_split, "views": cfg.feature_views, "augment": augment, "bytes": total, "common": common}
    return CachedFeatures(model, start, freezer, source)


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """``model`` in eval mode inside the block; every module's own mode restored after it."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.train(training)


def _feature_shapes(model, start, preprocess: Preprocess, device) -> tuple[tuple | None, tuple]:
    x = torch.zeros(1, preprocess.img_size, preprocess.img_size, len(preprocess.mean), dtype=torch.uint8)
    cut, pooled = lower_and_pooled(model, normalize(x.to(device), preprocess.mean, preprocess.std), start)
    return (None if cut is None else tuple(cut.shape[1:])), tuple(pooled.shape[1:])


@torch.no_grad()
def _head_reads_back(model, start, split: Split, preprocess: Preprocess, device, n: int = 4) -> bool:
    """Whether logits from the cached features equal the model's own on a few training images
    (fp32): a model that does more after its head (fast_cnn scales its logits) is not cut."""
    if not len(split):
        return False
    x = normalize(torch.from_numpy(split.pixels[split.rows[:n]]).to(device), preprocess.mean, preprocess.std)
    expected = model(x)
    cut, pooled = lower_and_pooled(model, x, start)
    upper = UpperModel(model, start)
    got = [upper(pooled)] + ([] if cut is None else [upper(cut)])
    return all(torch.allclose(g, expected, rtol=1e-3, atol=1e-4) for g in got)


def _extract(run, split: Split, views: int, augment, seed: int, shapes, dtype: torch.dtype) -> FeatureSet:
    """``split``'s features in ``views`` views (view 0 as it is, the others augmented), through ``run``."""
    cut_shape, pooled_shape = shapes
    n = len(split)
    cut = None if cut_shape is None else torch.empty((views, n, *cut_shape), dtype=dtype)
    pooled = torch.empty((views, n, *pooled_shape), dtype=dtype)
    for v in range(views):
        loader = BatchLoader(split, _EXTRACT_BATCH, seed=seed, augment=augment if v else None)
        loader.set_epoch(v)  # each view its own, reproducible augmentation draws
        i = 0
        for x, _ in loader:
            c, p = run(x)
            if cut is not None:
                cut[v, i : i + len(x)] = c.to(dtype).cpu()
            pooled[v, i : i + len(x)] = p.to(dtype).cpu()
            i += len(x)
    return FeatureSet(cut, pooled, torch.from_numpy(split.labels))
