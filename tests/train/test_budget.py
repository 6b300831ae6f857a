"""The step and time budget: planned from a fake clock, so no test depends on the machine's speed."""

from __future__ import annotations

import pytest

from imgclf.errors import UserError
from imgclf.train.budget import StepPlan, parse_duration


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("42", 42)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten minutes", "0", "-5s"])
def test_bad_duration_is_a_user_error(text):
    with pytest.raises(UserError, match="--time"):
        parse_duration(text)


def test_epochs_plan_a_fixed_number_of_steps():
    plan = StepPlan(steps_per_epoch=10, epochs=3, budget=None, t_start=0.0, clock=FakeClock())
    plan.start()
    plan.replan(7)
    assert plan.total == 30 and plan.of_epochs() == "/3"


def test_a_budget_plans_the_steps_that_fit_from_the_measured_speed():
    clock = FakeClock(5.0)  # data preparation took 5 s of a 100 s budget
    plan = StepPlan(steps_per_epoch=10, epochs=1, budget=100.0, t_start=0.0, clock=clock)
    plan.start(0)
    clock.now = 5.0 + 3 * 0.5  # three steps at 0.5 s
    plan.replan(3)
    assert plan.total == 3 + int(0.98 * (100 - 6.5) / 0.5)  # 2% spare for the last validation
    assert plan.of_epochs() == f"/~{-(-plan.total // 10)}"
    clock.now = 5.0 + 20 * 1.0  # slower than first measured: fewer steps fit
    plan.replan(20)
    assert plan.total == 20 + int(0.98 * 75 / 1.0)
    clock.now = 200.0  # past the budget: stop where we are
    plan.replan(50)
    assert plan.total == 50


def test_a_resumed_budget_measures_speed_from_where_it_restarted():
    clock = FakeClock(1000.0)
    plan = StepPlan(steps_per_epoch=10, epochs=1, budget=60.0, t_start=1000.0, clock=clock)
    plan.start(40)  # resumed at step 40: earlier steps' time is not this process's
    clock.now = 1010.0
    plan.replan(50)
    assert plan.total == 50 + int(0.98 * 50 / 1.0)
    plan.replan(40)  # no step taken since the start: nothing to measure, nothing changes
    assert plan.total == 50 + int(0.98 * 50 / 1.0)
