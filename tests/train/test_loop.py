"""The training loop's control: time budgets, early stopping, the monitored metric."""

from __future__ import annotations

import json
import time

import pytest
from synth import make_folder

import imgclf
from imgclf.errors import UserError
from imgclf.train.loop import parse_duration

pytestmark = pytest.mark.slow


def epochs_of(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes") / "d", per_class=40)


def test_time_budget_ends_training_within_it(shapes, tmp_path):
    t0 = time.perf_counter()
    result = imgclf.train(shapes, out=tmp_path / "run", time="6s", batch_size=16)
    elapsed = time.perf_counter() - t0
    assert elapsed < 6 + 1.5, f"a 6 s budget took {elapsed:.1f} s"
    rows = epochs_of(tmp_path / "run")
    assert result.epochs == len(rows) > 1  # the plan ran many epochs, not --epochs' default
    assert rows[-1]["lr"] < 0.05 * rows[0]["lr"] or rows[-1]["lr"] < 1e-4  # the schedule reached its end


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1.5h", 5400), ("42", 42)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_is_a_user_error():
    with pytest.raises(UserError, match="10m"):
        parse_duration("ten minutes")


def test_early_stopping_stops_and_keeps_the_best(shapes, tmp_path):
    result = imgclf.train(shapes, out=tmp_path / "run", epochs=40, early_stopping=2)
    rows = epochs_of(tmp_path / "run")
    assert result.stopped_early and len(rows) < 40
    best = max(rows, key=lambda r: r["val_accuracy"])  # the first epoch reaching the highest value
    assert rows[-1]["epoch"] - best["epoch"] == 2  # stopped exactly `patience` epochs after the best
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["epoch"] == best["epoch"]  # the saved model is the best by the monitored metric


def test_monitor_val_loss_keeps_the_lowest_loss_epoch(shapes, tmp_path):
    imgclf.train(shapes, out=tmp_path / "run", epochs=4, monitor="val_loss")
    rows = epochs_of(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["epoch"] == min(rows, key=lambda r: r["val_loss"])["epoch"]
    assert all("val_balanced_accuracy" in r for r in rows)


def test_early_stopping_refuses_what_it_cannot_do(shapes, tmp_path):
    with pytest.raises(UserError, match="validation split"):
        imgclf.train(shapes, out=tmp_path / "a", epochs=3, early_stopping=2, val_fraction=0)
    with pytest.raises(UserError, match="weight-averaging"):
        imgclf.train(shapes, out=tmp_path / "b", epochs=3, early_stopping=2, weight_averaging="lookahead")
