"""assign_splits: stratified, grouped, predefined; deterministic per seed."""

from __future__ import annotations

from collections import Counter

import pytest

from imgclf.data.splits import assign_splits

CLASSES = ("a", "b", "c")
PER_CLASS = 50


def labels_3x50() -> list[str]:
    return [c for c in CLASSES for _ in range(PER_CLASS)]


def test_default_split_is_80_10_10_per_class():
    labels = labels_3x50()
    splits, method = assign_splits(labels, [None] * len(labels))
    assert method == "stratified"
    per = Counter(zip(labels, splits))
    for c in CLASSES:
        assert abs(per[c, "train"] - 40) <= 1
        assert abs(per[c, "val"] - 5) <= 1
        assert abs(per[c, "test"] - 5) <= 1
        assert per[c, "train"] + per[c, "val"] + per[c, "test"] == PER_CLASS
    assert Counter(splits) == {"train": 120, "val": 15, "test": 15}


def test_uneven_classes_keep_their_proportions():
    labels = ["big"] * 200 + ["small"] * 20
    splits, _ = assign_splits(labels, [None] * len(labels))
    per = Counter(zip(labels, splits))
    assert abs(per["big", "test"] - 20) <= 1 and abs(per["small", "test"] - 2) <= 1
    assert abs(per["big", "val"] - 20) <= 1 and abs(per["small", "val"] - 2) <= 1


def test_deterministic_for_a_seed_and_different_for_another():
    labels = labels_3x50()
    given = [None] * len(labels)
    first, _ = assign_splits(labels, given, seed=7)
    again, _ = assign_splits(labels, given, seed=7)
    other, _ = assign_splits(labels, given, seed=8)
    assert first == again
    assert first != other
    assert Counter(first) == Counter(other)  # same sizes, different members


def test_grouped_split_keeps_each_group_in_one_split():
    groups = [f"g{g:02d}" for g in range(40) for _ in range(5)]
    labels = [CLASSES[int(g[1:]) % 3] for g in groups]
    splits, method = assign_splits(labels, [None] * len(labels), groups=groups, seed=3)
    assert "by group" in method
    where: dict[str, set[str]] = {}
    for g, sp in zip(groups, splits):
        where.setdefault(g, set()).add(sp)
    assert all(len(s) == 1 for s in where.values()), {g: s for g, s in where.items() if len(s) > 1}
    sizes = Counter(splits)
    assert set(sizes) == {"train", "val", "test"}
    assert sizes["train"] > sizes["val"] and sizes["train"] > sizes["test"]
    # Group-sized steps: about 4 groups (20 images) each for val and test.
    assert 10 <= sizes["test"] <= 35 and 10 <= sizes["val"] <= 35


def test_grouped_split_needs_a_group_for_every_sample():
    with pytest.raises(ValueError, match="no value in the group column"):
        assign_splits(["a", "b"] * 5, [None] * 10, groups=["g1"] * 9 + [""])


def test_predefined_train_test_carves_val_from_train_only():
    labels = labels_3x50() + [c for c in CLASSES for _ in range(10)]
    given = ["train"] * 150 + ["test"] * 30
    splits, method = assign_splits(labels, given)
    assert method.startswith("predefined") and "val carved from train" in method
    assert splits[150:] == ["test"] * 30, "the given test split is untouched"
    assert Counter(splits[:150]) == {"train": 135, "val": 15}
    assert Counter(lab for lab, sp in zip(labels, splits) if sp == "val") == {c: 5 for c in CLASSES}


def test_predefined_without_test_gets_test_carved():
    labels = labels_3x50()
    given = ["train"] * 120 + ["val"] * 30
    splits, method = assign_splits(labels, given)
    assert "test carved from train" in method and "val carved" not in method
    assert splits[120:] == ["val"] * 30
    assert Counter(splits[:120]) == {"train": 108, "test": 12}


def test_unassigned_samples_in_a_predefined_layout_join_train():
    labels = labels_3x50()
    given = [None] * 100 + ["test"] * 50
    splits, _ = assign_splits(labels, given, val_fraction=0.0)
    assert splits == ["train"] * 100 + ["test"] * 50


def test_val_fraction_zero_makes_no_val():
    labels = labels_3x50()
    free, _ = assign_splits(labels, [None] * len(labels), val_fraction=0.0)
    assert "val" not in free
    assert Counter(free) == {"train": 135, "test": 15}
    predefined, method = assign_splits(labels, ["train"] * 130 + ["test"] * 20, val_fraction=0.0)
    assert "val" not in predefined and "carved" not in method
