"""How many optimiser steps a run takes: a number of epochs, or as many as fit in a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import UserError

Clock = Callable[[], float]


class StepPlan:
    """``epochs`` x steps per epoch, or, with a time ``budget`` (seconds), as many steps as fit,
    re-estimated from the measured speed (validation included) after the first steps and after
    every epoch. The learning-rate schedule and weight averaging read ``total`` live, so they end
    exactly where training ends.

    ``clock`` is injectable so that budgets can be tested with a fake clock instead of a busy
    machine's wall time; ``t_start`` is the clock's reading when the run began (data preparation
    counts against the budget).
    """

    def __init__(self, steps_per_epoch: int, epochs: int, budget: float | None, t_start: float, clock: Clock = time.perf_counter):
        self.steps_per_epoch, self.budget, self.t_start, self.clock = steps_per_epoch, budget, t_start, clock
        self.total = epochs * steps_per_epoch
        self.t_train, self.step0 = t_start, 0
        # Data-parallel runs set this to a broadcast of rank 0's number, so that every rank ends
        # at the same step (a rank left waiting in a collective would hang).
        self.share: Callable[[int], int] | None = None

    def start(self, step: int = 0) -> None:
        """Training (re)starts at ``step``: speed is measured from here."""
        self.t_train, self.step0 = self.clock(), step

    def replan(self, step: int) -> None:
        """Set ``total`` to the steps that fit in what is left of the budget, at the speed so far."""
        if self.budget is None or step <= self.step0:
            return
        now = self.clock()
        per_step = (now - self.t_train) / (step - self.step0)
        remaining = self.budget - (now - self.t_start)
        # 2% spare: the last epoch's validation and checkpoint come after the last step.
        self.total = max(step, step + int(0.98 * remaining / per_step)) if per_step > 0 else self.total
        if self.share is not None:
            self.total = self.share(self.total)

    def of_epochs(self) -> str:
        """"/N" epochs planned, or "/~N" when a budget makes it an estimate (for log lines)."""
        n = -(-self.total // self.steps_per_epoch)
        return f"/{n}" if self.budget is None else f"/~{n}"


def parse_duration(text: str) -> float:
    """'90s', '10m', '1.5h' or a plain number of seconds -> seconds."""
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise UserError(f"--time {text!r}: use a duration like 90s, 10m or 1.5h") from None
    if value <= 0:
        raise UserError("--time must be positive")
    return value
