"""Weight averaging during training."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class Lookahead:
    """Every ``every`` steps, move a slow copy of the weights towards the fast ones and reset the
    fast weights to it (airbench's lookahead-EMA). The slow copy's inertia grows as training ends
    (decay = 0.95^5 x progress^3), and the final weights are the slow ones.
    Measured by airbench on CIFAR-10: about +0.2% at the same step count.
    """

    def __init__(self, model: nn.Module, total_steps: int, every: int = 5):
        self.every, self.total = every, max(1, total_steps)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> None:
        if step % self.every == 0:
            self._pull(model, 0.95**5 * (step / self.total) ** 3)

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        self._pull(model, 1.0)

    def _pull(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for k, slow in self.slow.items():
            slow.lerp_(state[k], 1.0 - decay)
            state[k].copy_(slow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.slow)


class EMA:
    """An exponential moving average of the weights (and batch-norm statistics), kept beside the
    training weights: evaluated and saved in their place when on. ``decay`` is per step; early
    steps use a smaller one (timm's warmup, (1 + n) / (10 + n)) so the average does not remember
    the random initialisation."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay, self.updates = decay, 0
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for k, slow in self.slow.items():
            slow.lerp_(state[k], 1.0 - d)

    @contextmanager
    def applied(self, model: nn.Module):
        """Within the block, ``model`` holds the averaged weights; afterwards its own again."""
        state = model.state_dict()
        backup = {k: state[k].detach().clone() for k in self.slow}
        with torch.no_grad():
            for k, v in self.slow.items():
                state[k].copy_(v)
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    state[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.slow)
