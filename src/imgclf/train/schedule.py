"""Learning-rate schedules as multipliers of the peak rate, per optimiser step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float = 0.0) -> float:
    """Linear warmup from 1% to 100%, then cosine decay to ``floor`` (a fraction of the peak).

    Warmup keeps the first updates of a randomly initialised net (and of AdamW's unbiased but
    noisy second-moment estimate) from blowing up; cosine decay ends training at a low rate,
    which is where most of the final accuracy is gained.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
