"""The learning-rate range test (Smith, 2015; fastai's ``lr_find``).

Train for a few dozen steps while the learning rate grows exponentially from tiny to huge, watch
the (smoothed) loss, and suggest the rate where it falls fastest. The model is thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import PreparedData, prepare
from ..data.preprocess import Preprocess
from ..device import pick_device, pick_precision
from ..errors import UserError
from ..inference.normalize import normalize
from ..inference.precision import autocast
from ..models import default_img_size
from ..progress import log
from .config import TrainConfig
from .losses import make_criterion
from .optim import make_optimizer


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float
    plot: Path | None


def lr_find(
    cfg: TrainConfig,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    plot: str | Path | None = None,
    data: PreparedData | None = None,
) -> LRFindResult:
    """Run the range test for the model and data of ``cfg`` (its lr is ignored); ``data`` is the
    already prepared dataset when the caller has it (``train --lr auto``)."""
    from .loop import (  # the same pieces as training
        augment_from_config,
        build_model,
        train_loader,
    )

    if not 0 < start_lr < end_lr:
        raise UserError("the range test needs 0 < start lr < end lr")
    cfg.img_size = cfg.img_size or default_img_size(cfg.model)
    torch.manual_seed(cfg.seed)
    preprocess = Preprocess(cfg.img_size)
    if data is None:
        data = prepare(cfg.data, preprocess, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                       seed=cfg.seed, group_column=cfg.group_column, cache_dir=cfg.cache_dir)  # fmt: skip
    split = data.split("train")
    device = pick_device(cfg.device)
    precision, _ = pick_precision(cfg.precision, device)
    model, _ = build_model(cfg, len(data.classes), split, preprocess, device)
    model.train()
    probe = TrainConfig(**{**cfg.to_dict(), "lr": 1.0})  # groups keep their relative rates
    optimizer = make_optimizer(model, probe)
    base = [g["lr"] for g in optimizer.param_groups]
    criterion = make_criterion(cfg.loss, label_smoothing=cfg.label_smoothing, gamma=cfg.focal_gamma)
    loader = train_loader(cfg, split, augment_from_config(cfg), device)

    lrs = np.geomspace(start_lr, end_lr, steps)
    raw, smooth, avg, best = [], [], 0.0, math.inf
    batches = _forever(loader)
    for i, lr in enumerate(lrs):
        for g, b in zip(optimizer.param_groups, base):
            g["lr"] = lr * b
        x, y = next(batches)
        x = normalize(x.to(device), preprocess.mean, preprocess.std)
        with autocast(device, precision):
            loss = criterion(model(x).float(), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        avg = 0.98 * avg + 0.02 * value
        s = avg / (1 - 0.98 ** (i + 1))  # bias-corrected moving average
        raw.append(value)
        smooth.append(s)
        best = min(best, s)
        if not math.isfinite(s) or (i > 10 and s > 4 * best):
            break  # the loss has blown up: larger rates tell nothing more
    used = lrs[: len(smooth)]
    suggestion = suggest(used, np.array(smooth))
    path = Path(plot) if plot else None
    if path is not None:
        _plot(used, smooth, suggestion, path)
    log(f"lr-find: {len(smooth)} steps from {start_lr:g} to {used[-1]:.3g}; suggested lr {suggestion:.3g}")
    return LRFindResult([float(v) for v in used], [float(v) for v in smooth], float(suggestion), path)


def suggest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate of steepest descent of the loss (against log lr), before the loss's minimum."""
    end = int(np.argmin(losses))
    if end < 3:
        return float(lrs[max(end, 0)] / 10)
    slopes = np.gradient(losses[: end + 1], np.log(lrs[: end + 1]))
    return float(lrs[int(np.argmin(slopes[1:])) + 1])


def _forever(loader):
    epoch = 0
    while True:
        epoch += 1
        loader.set_epoch(epoch)
        yield from loader


def _plot(lrs, losses, suggestion: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
