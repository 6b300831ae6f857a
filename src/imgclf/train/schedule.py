"""Learning-rate schedules as multipliers of the peak rate, per optimiser step."""

from __future__ import annotations

import math


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, *, shape: str = "cosine", start: float = 0.01, end: float = 0.0
) -> float:
    """Multiplier of the peak learning rate at ``step``: warmup from ``start`` to 1, then
    ``shape`` decay to ``end``: cosine, linear, onecycle (cosine rise and fall) or step (x0.1 at
    50% and 75% of the decay phase).

    Warmup keeps the first updates of a randomly initialised net (and of Adam's noisy early
    second-moment estimates) from blowing up; the decay ends training at a low rate, where most
    of the final accuracy is gained.
    """
    if warmup_steps > 0 and step < warmup_steps:
        rise = step / warmup_steps
        if shape == "onecycle":  # Smith's one-cycle: a cosine-shaped rise as well as fall
            rise = 0.5 * (1.0 - math.cos(math.pi * rise))
        return start + (1.0 - start) * rise
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    if shape == "linear":
        return 1.0 + (end - 1.0) * progress
    if shape == "step":  # ResNet-style: x0.1 at half and at three quarters of the decay phase
        return max(end, 0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CycleSchedule:
    """A run's learning-rate factor by global step, for ``torch.optim.lr_scheduler.LambdaLR``.

    Schedules run per cycle (extending a finished run starts a new one at ``state.cycle_start``),
    and the cycle ends at the plan's ``total``, read at every step because a time budget moves it.
    ``plan`` and ``state`` are the run's :class:`~.budget.StepPlan` and
    :class:`~.state.TrainState`, only read here.
    """

    def __init__(self, plan, state, *, warmup_steps: int, shape: str, start: float, end: float):
        self.plan, self.state = plan, state
        self.warmup_steps, self.shape, self.start, self.end = warmup_steps, shape, start, end

    def factor(self, step: int) -> float:
        n, total = step - self.state.cycle_start, self.plan.total - self.state.cycle_start
        return lr_factor(n, total, min(self.warmup_steps, total // 2), shape=self.shape, start=self.start, end=self.end)
