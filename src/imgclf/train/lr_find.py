"""The learning-rate range test (Smith, 2015; fastai's ``lr_find``).

Train for a few dozen steps while the learning rate grows exponentially from tiny to huge, watch
the (smoothed) loss, and suggest the rate where it falls fastest. The model is thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import PreparedData
from ..device import pick_device, pick_precision
from ..errors import UserError
from ..progress import log
from .builders import build_loader, build_model, build_step, prepare_data
from .config import TrainConfig
from .preprocessing import resolve_preprocess


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
    already prepared dataset when the caller has it (``train --lr auto``).

    ``cfg`` is resolved as for training (:func:`imgclf.train.config.resolve`: a preset applied),
    and the model, augmentation, loader, optimiser, loss and mixing are built by the same
    builders, so the suggestion is for the run `imgclf train` with these options makes.
    """
    if not 0 < start_lr < end_lr:
        raise UserError("the range test needs 0 < start lr < end lr")
    preprocess = resolve_preprocess(cfg)
    # lr 1: every parameter group keeps its rate relative to the base rate, which the test scales.
    probe = replace(cfg, img_size=preprocess.img_size, lr=1.0)
    torch.manual_seed(probe.seed)
    if data is None:
        data = prepare_data(probe, preprocess)
    split = data.split("train")
    device = pick_device(probe.device)
    precision, _ = pick_precision(probe.precision, device)
    model, _ = build_model(probe, len(data.classes), split, preprocess, device)
    model.train()
    step = build_step(probe, model, split, len(data.classes), preprocess, device, precision)
    base = [g["lr"] for g in step.optimizer.param_groups]
    loader = build_loader(probe, split, device)

    lrs = np.geomspace(start_lr, end_lr, steps)
    raw, smooth, avg, best = [], [], 0.0, math.inf
    batches = _forever(loader)
    for i, lr in enumerate(lrs):
        for g, b in zip(step.optimizer.param_groups, base):
            g["lr"] = lr * b
        x, y = next(batches)
        loss, _, _ = step(model, x, y)
        value = loss.item()
        avg = 0.98 * avg + 0.02 * value
        s = avg / (1 - 0.98 ** (i + 1))  # bias-corrected moving average
        raw.append(value)
        smooth.append(s)
        best = min(best, s)
        if not math.isfinite(s) or (i > 10 and s > 4 * best):
            break  # the loss has blown up: larger rates tell nothing more
    used = lrs[: len(smooth)]
    result = LRFindResult([float(v) for v in used], [float(v) for v in smooth], float(suggest(used, np.array(smooth))), None)
    if plot:
        plot_range_test(result, Path(plot))
    log(f"lr-find: {len(smooth)} steps from {start_lr:g} to {used[-1]:.3g}; suggested lr {result.suggestion:.3g}")
    return result


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


def plot_range_test(result: LRFindResult, path: Path) -> None:
    """Save the loss-against-learning-rate figure to ``path`` (and record it in ``result.plot``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(result.lrs, result.losses)
    ax.axvline(result.suggestion, color="tab:red", linestyle="--", label=f"suggested {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    result.plot = path
