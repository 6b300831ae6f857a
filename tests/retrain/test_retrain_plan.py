"""Which images train a retrained run: the old split kept, feedback only in train or held out."""

from __future__ import annotations

import csv
import hashlib

import pytest

from imgclf.data.sources import Sample, Source
from imgclf.retrain.feedback import FeedbackImage
from imgclf.retrain.plan import MIN_HOLDOUT_FEEDBACK, plan_data


class BytesSource(Source):
    """An old run's data: each image is a few distinct bytes."""

    def __init__(self, names):
        super().__init__("memory:")
        self.samples = [Sample(n, n.split("/")[0]) for n in names]

    def read_bytes(self, path):
        return f"image {path}".encode()


def digest(path: str) -> str:
    return hashlib.sha256(f"image {path}".encode()).hexdigest()


@pytest.fixture
def old(tmp_path):
    """Six images per split of two classes, and the splits.csv the old run recorded."""
    rows = [(f"{c}/{s}{i}.png", c, s) for s in ("train", "val", "test") for c in ("a", "b") for i in range(3)]
    splits = tmp_path / "splits.csv"
    with open(splits, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "group", "extra"])
        w.writerows([name, label, split, "", "x"] for name, label, split in rows)
    return BytesSource([name for name, _, _ in rows]), splits


def new_image(i: int, label: str = "a") -> FeedbackImage:
    return FeedbackImage(f"images/new{i}.png", label, hashlib.sha256(f"new {i}".encode()).hexdigest(), "user")


def rows_by_path(plan) -> dict[str, tuple[str, str]]:
    assert plan.rows[0] == ["path", "label", "split", "group"]
    return {r[0]: (r[1], r[2]) for r in plan.rows[1:]}


def test_a_correction_of_an_old_training_image_replaces_it(old):
    source, splits = old
    fix = FeedbackImage("images/x.png", "b", digest("a/train0.png"), "review")  # the same bytes, another label
    plan = plan_data(source, splits, [fix], holdout=0.2)
    rows = rows_by_path(plan)
    assert "a/train0.png" not in rows  # the old label no longer trains
    assert rows["feedback:images/x.png"] == ("b", "train")
    assert plan.counts() == {"feedback_images": 1, "trained_on": 1, "held_out": 0, "old_images_replaced": 1,
                             "old_labels_changed": 1, "old_test_images_held_out": 0, "old_images_kept": 17}  # fmt: skip


def test_feedback_on_an_old_test_image_is_scored_but_never_trained_on(old):
    source, splits = old
    flagged = FeedbackImage("images/t.png", "b", digest("a/test1.png"), "user")
    plan = plan_data(source, splits, [flagged, *(new_image(i) for i in range(3))], holdout=0.2)
    rows = rows_by_path(plan)
    assert rows["a/test1.png"] == ("a", "test")  # the test split is the old one, label included
    assert "feedback:images/t.png" not in rows
    assert flagged in plan.held_out and flagged not in plan.trained
    assert plan.test_duplicates == 1 and plan.replaced == 0


def test_the_old_split_is_kept_and_feedback_only_ever_trains(old):
    source, splits = old
    feedback = [new_image(i, "ab"[i % 2]) for i in range(10)]
    plan = plan_data(source, splits, feedback, holdout=0.2, seed=3)
    rows = rows_by_path(plan)
    with open(splits, newline="") as fh:
        recorded = {r["path"]: (r["label"], r["split"]) for r in csv.DictReader(fh)}
    assert {p: v for p, v in rows.items() if not p.startswith("feedback:")} == recorded
    assert {v[1] for p, v in rows.items() if p.startswith("feedback:")} == {"train"}
    assert len(plan.held_out) == 2 and len(plan.trained) == 8
    assert {"feedback:" + f.path for f in plan.trained} == {p for p in rows if p.startswith("feedback:")}
    assert not {"feedback:" + f.path for f in plan.held_out} & set(rows)  # held out: in no split at all
    again = plan_data(source, splits, feedback, holdout=0.2, seed=3)
    assert again.held_out == plan.held_out  # seeded: the same images every time


def test_too_little_feedback_is_all_trained_on(old):
    source, splits = old
    feedback = [new_image(i) for i in range(MIN_HOLDOUT_FEEDBACK - 1)]
    plan = plan_data(source, splits, feedback, holdout=0.5)
    assert plan.trained == feedback and plan.held_out == []


def test_a_retrained_runs_own_feedback_keeps_its_prefix_and_new_feedback_gets_another(tmp_path):
    names = ["a/0.png", "b/0.png", "feedback:images/old.png"]
    splits = tmp_path / "splits.csv"
    with open(splits, "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "split"], *[[n, "a", "train"] for n in names]])
    plan = plan_data(BytesSource(names), splits, [new_image(1)], holdout=0.0)
    assert plan.prefix == "feedback2:"
    assert rows_by_path(plan)["feedback2:images/new1.png"] == ("a", "train")
