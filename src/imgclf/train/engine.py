"""The epoch engine: one optimiser step, one pass over the training batches, one validation.

One plain function per phase, as in torchvision's reference scripts. Nothing here knows about run
directories, checkpoints or budgets: :mod:`.fit` strings these together, and ``lr-find`` and
``bench train`` call the very same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.dataset import Split
from ..data.loader import BatchLoader
from ..errors import UserError
from ..inference.forward import logits_for_batches
from ..inference.normalize import normalize
from ..inference.precision import autocast
from .mix import Mixer


@dataclass
class TrainStep:
    """What one optimiser step needs; :func:`imgclf.train.builders.build_step` makes it from a
    configuration, so training, ``lr-find`` and ``bench train`` step alike."""

    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    precision: str
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    mixer: Mixer | None = None
    scaler: torch.amp.GradScaler | None = None  # fp16 only: its gradients underflow without loss scaling

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Train on one uint8 NHWC batch (or a float batch of cached features); returns (loss, logits, labels) on the device."""
        x = x.to(self.device, non_blocking=True)
        x = normalize(x, self.mean, self.std) if x.dtype == torch.uint8 else x  # float: cached features (feature_cache.py)
        y = y.to(self.device, non_blocking=True)
        target = y
        if self.mixer is not None and self.mixer.enabled:
            x, target = self.mixer(x, y)  # soft targets; accuracy is still against the true labels
        with autocast(self.device, self.precision):
            logits = model(x)
            loss = self.criterion(logits.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, logits, y


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    step: TrainStep,
    *,
    after_step: Callable[[Callable[[], float]], bool | None] | None = None,
    after_train_mode: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """One pass over ``batches``; returns (mean loss, accuracy).

    ``after_step`` is called after each optimiser step with a function that reads the step's loss
    (reading it makes a GPU wait, so callers do it sparingly); a true result ends the pass. Losses
    stay on the device until the end of the epoch, so a GPU never waits for the host.
    """
    model.train()
    if after_train_mode is not None:
        after_train_mode()  # e.g. frozen blocks keep their batch-norm statistics
    total_loss = torch.zeros((), device=step.device)
    correct = torch.zeros((), device=step.device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        loss, logits, y = step(model, x, y)
        total_loss += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if after_step is not None and after_step(loss.item):
            break
    mean_loss = total_loss.item() / max(1, seen)
    if not math.isfinite(mean_loss):
        lr = step.optimizer.param_groups[0]["lr"]
        raise UserError(f"training diverged (loss {mean_loss}); lower the learning rate (now {lr:.2g})")
    return mean_loss, correct.item() / max(1, seen)


def validate(model: nn.Module, split: Split, mean, std, device: torch.device, precision: str, batch_size: int) -> dict[str, float]:
    """``val_loss``, ``val_accuracy`` and ``val_balanced_accuracy`` (the mean per-class recall, the
    figure to select by when classes are imbalanced) of ``model`` on ``split``."""
    batches = (x for x, _ in BatchLoader(split, max(batch_size, 256), device=device))
    logits = logits_for_batches(model, batches, mean=mean, std=std, device=device, precision=precision)
    y = split.labels
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    correct = logits.argmax(1) == y
    balanced = float(np.mean([correct[y == c].mean() for c in np.unique(y)]))
    return {"val_loss": loss, "val_accuracy": float(np.mean(correct)), "val_balanced_accuracy": balanced}
