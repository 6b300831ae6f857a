"""The promote / do-not-promote rule, on the numbers alone."""

from __future__ import annotations

from imgclf.retrain.score import KEEP, PROMOTE, compare, verdict


def scores(old: float, new: float, n: int = 200) -> dict:
    return {"n": n, "old_accuracy": old, "new_accuracy": new}


def test_answers_are_compared_by_class_name_with_fixed_and_broken_counted():
    labels = ["cat", "dog", "dog", "fox", "cat"]
    old = ["cat", "cat", "dog", "cat", "dog"]  # 2 right
    new = ["cat", "dog", "cat", "fox", "dog"]  # 3 right: fixed 2 (items 1 and 3), broke 1 (item 2)
    assert compare(labels, old, new) == {"n": 5, "old_accuracy": 0.4, "new_accuracy": 0.6, "fixed": 2, "broken": 1}
    assert compare([], [], [])["old_accuracy"] is None


def test_test_accuracy_may_fall_by_the_tolerance_and_no_more():
    assert verdict(scores(0.900, 0.895), scores(0.2, 0.8), 0.5, "held-out")[0] == PROMOTE  # exactly 0.5 points
    decision, reasons = verdict(scores(0.900, 0.894), scores(0.2, 0.8), 0.5, "held-out")
    assert decision == KEEP
    assert "fell 0.60 points" in reasons[0] and "tolerance of 0.5" in reasons[0]
    assert verdict(scores(0.90, 0.80), scores(0.2, 0.8), 10, "held-out")[0] == PROMOTE


def test_the_feedback_must_not_get_worse():
    decision, reasons = verdict(scores(0.9, 0.95), scores(0.6, 0.4, n=10), 0.5, "held-out")
    assert decision == KEEP and "10 held-out feedback images fell" in reasons[1]
    decision, reasons = verdict(scores(0.9, 0.9), scores(0.5, 0.5, n=10), 0.5, "held-out")
    assert decision == PROMOTE and "held" in reasons[1]
    decision, reasons = verdict(scores(0.9, 0.9), {"n": 0, "old_accuracy": None, "new_accuracy": None}, 0.5, "held-out")
    assert decision == PROMOTE and "no feedback image" in reasons[1]
