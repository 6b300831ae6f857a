"""Weight averaging during training."""

from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    """Every ``every`` steps, move a slow copy of the weights towards the fast ones and reset the
    fast weights to it (airbench's lookahead-EMA). The slow copy's inertia grows as training ends
    (decay = 0.95^5 x progress^3), and the final weights are the slow ones.
    Measured by airbench on CIFAR-10: about +0.2% at the same step count.

    Not ``timm.optim.Lookahead``: that is another algorithm (an optimiser wrapper pulling the
    parameters only, not the batch-norm statistics, with a fixed alpha of 0.5 every 6 steps),
    and the fast-small preset's figures in BENCHMARKS.md were measured with this one.
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

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, v in state.items():
                self.slow[k].copy_(v)


class EMA:
    """An exponential moving average of the weights (and batch-norm statistics), kept beside the
    training weights: evaluated and saved in their place when on.

    timm's ``ModelEmaV3`` holds the average (a copy of the model, :attr:`module`, which validation
    and the saved bundle use directly). The decay warm-up stays imgclf's, ``min(decay, (1 + n) /
    (10 + n))`` after n updates, so the average does not remember the random initialisation and
    runs match those made before timm held it; ModelEmaV3's own warm-up (``1 - (1 + n / gamma) **
    -power``) has no parameters that give this curve.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        from timm.utils import ModelEmaV3

        self.decay, self.updates = decay, 0
        self.average = ModelEmaV3(model, decay=decay, use_warmup=False)

    @property
    def module(self) -> nn.Module:
        """The averaged model."""
        return self.average.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        self.average.apply_update_(model, min(self.decay, (1 + self.updates) / (10 + self.updates)))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged floating-point state (what checkpoints store as ``avg.*``)."""
        return {k: v for k, v in self.module.state_dict().items() if v.is_floating_point()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.module.state_dict()
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)
