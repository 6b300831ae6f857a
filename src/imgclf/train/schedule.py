"""Learning-rate schedules as multipliers of the peak rate, per optimiser step."""

from __future__ import annotations

import math


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, *, shape: str = "cosine", start: float = 0.01, end: float = 0.0
) -> float:
    """Multiplier of the peak learning rate at ``step``: linear warmup from ``start`` to 1, then
    ``shape`` (cosine or linear) decay to ``end``.

    Warmup keeps the first updates of a randomly initialised net (and of Adam's noisy early
    second-moment estimates) from blowing up; the decay ends training at a low rate, where most
    of the final accuracy is gained.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return start + (1.0 - start) * step / warmup_steps
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    if shape == "linear":
        return 1.0 + (end - 1.0) * progress
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
