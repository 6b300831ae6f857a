"""The drift baseline every run writes when training ends (RUN/model/drift_baseline.json)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from runcopy import copy_run
from synth import make_folder

import imgclf
from imgclf.data.dataset import prepare
from imgclf.data.image_size import upright_size
from imgclf.data.image_stats import CONFIDENCE, STATISTICS, batch_image_stats, compute_baseline
from imgclf.data.sources import open_source
from imgclf.inference.bundle import read_meta
from imgclf.runs import Run
from imgclf.serve.drift import DriftMonitor
from imgclf.train.drift_baseline import BASELINE_FILE, baseline_for_run, refresh_confidence

ENTRY_KEYS = {"n", "mean", "std", "sample", "bin_edges", "bin_fractions"}


@pytest.fixture(scope="module")
def digits_baseline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("drift") / "run"
    imgclf.train("builtin:digits", out=out, model="lenet5", epochs=1, img_size=16, seed=0)
    return out


def split_paths(run, split: str) -> list[str]:
    with open(run / "splits.csv", newline="") as fh:
        return [r["path"] for r in csv.DictReader(fh) if r["split"] == split]


def served(run, paths: list[str], darken: float = 1.0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The images at ``paths`` as `imgclf serve` turns an upload into what it measures: the
    model's one preprocessing of the bytes (Preprocess.load) and the upright size from the header."""
    source, pre = open_source("builtin:digits"), read_meta(run / "model").preprocess
    data = [source.read_bytes(p) for p in paths]
    pixels = np.stack([pre.load(d) for d in data])
    return (pixels * darken).astype(np.uint8), [upright_size(d) for d in data]


@pytest.mark.slow
def test_every_statistic_and_the_confidence_of_the_validation_split(digits_baseline_run):
    run = digits_baseline_run
    baseline = json.loads((run / "model" / BASELINE_FILE).read_text())
    assert set(baseline["statistics"]) == {*STATISTICS, CONFIDENCE}
    val = split_paths(run, "val")
    for name, entry in baseline["statistics"].items():
        assert set(entry) >= ENTRY_KEYS, name
        assert entry["n"] == len(entry["sample"]) == len(val), name  # fewer than the cap: every val image
    assert baseline["source"]["split"] == "val" and baseline["source"]["images"] == len(val)
    assert baseline["source"]["confidence_temperature"] == 1.0
    conf = np.array(baseline["statistics"][CONFIDENCE]["sample"])
    assert ((conf > 0.1) & (conf <= 1.0)).all()  # top-1 probabilities of 10 classes
    assert baseline["statistics"]["width"]["mean"] == 8.0  # the digits' own 8 x 8, not the 16 px the model sees


@pytest.mark.slow
def test_the_baseline_measures_the_pixels_serving_measures(digits_baseline_run):
    """Served uploads of the validation images give exactly the baseline's values, so only a real
    change of input can move the drift scores; darkened uploads are flagged on brightness."""
    run = digits_baseline_run
    baseline = json.loads((run / "model" / BASELINE_FILE).read_text())
    pixels, sizes = served(run, split_paths(run, "val"))
    measured = batch_image_stats(pixels, sizes)
    for name in STATISTICS:
        assert np.allclose(sorted(baseline["statistics"][name]["sample"]), sorted(measured[name]), rtol=1e-6, atol=1e-9), name
    monitor = DriftMonitor(baseline, window=500)
    monitor.observe_images(*served(run, split_paths(run, "test")))
    assert monitor.scores()["drifted"] is False
    monitor.reset()
    monitor.observe_images(*served(run, split_paths(run, "test"), darken=0.3))
    assert "brightness" in monitor.scores()["drifted_statistics"]


@pytest.mark.slow
def test_a_run_without_validation_images_describes_its_training_split(tmp_path):
    data = make_folder(tmp_path / "photos", per_class=6, size=20)
    out = tmp_path / "run"
    imgclf.train(data, out=out, model="lenet5", epochs=1, img_size=16, val_fraction=0.0, test_fraction=0.2)
    baseline = json.loads((out / "model" / BASELINE_FILE).read_text())
    assert baseline["source"]["split"] == "train"
    assert "no validation split" in baseline["source"]["why"]
    train = split_paths(out, "train")
    assert baseline["statistics"]["brightness"]["n"] == len(train)
    assert baseline["statistics"]["width"]["mean"] == 20.0


@pytest.mark.slow
def test_the_sample_is_capped(digits_baseline_run, tmp_path):
    run = Run(copy_run(digits_baseline_run, tmp_path / "copy"))
    data = prepare("builtin:digits", read_meta(run.model_dir).preprocess, splits_from=run.splits)
    baseline = baseline_for_run(run, data, sample_size=25, seed=1)
    assert baseline["source"] == {**baseline["source"], "images": 25, "of": len(split_paths(run.root, "val"))}
    assert all(entry["n"] == 25 for entry in baseline["statistics"].values())
    assert json.loads((run.model_dir / BASELINE_FILE).read_text()) == baseline


def test_evaluation_can_refresh_the_confidence_under_its_temperature(tmp_path):
    rng = np.random.default_rng(0)
    stats = {name: rng.normal(100, 10, 300) for name in STATISTICS}
    baseline = compute_baseline(stats, rng.uniform(0.9, 1.0, 300))
    baseline["source"] = {"split": "val", "confidence_temperature": 1.0}
    (tmp_path / BASELINE_FILE).write_text(json.dumps(baseline))
    softer = rng.uniform(0.5, 0.8, 300)
    assert refresh_confidence(tmp_path, softer, temperature=1.7)
    after = json.loads((tmp_path / BASELINE_FILE).read_text())
    assert after["statistics"][CONFIDENCE]["mean"] == pytest.approx(softer.mean())
    assert {k: v for k, v in after["statistics"].items() if k != CONFIDENCE} == {
        k: v for k, v in baseline["statistics"].items() if k != CONFIDENCE
    }
    assert after["source"]["confidence_temperature"] == 1.7
    assert not refresh_confidence(tmp_path / "no-such-run", softer, temperature=1.0)


def test_evaluate_refreshes_the_confidence_baseline_under_its_temperature(digits_baseline_run, tmp_path):
    """Serving compares calibrated confidences: after `imgclf evaluate` fits a temperature, the
    baseline's confidence sample is the validation split's under that temperature."""
    run = copy_run(digits_baseline_run, tmp_path / "run")
    imgclf.evaluate(run, robustness=False, explain=False, label_issues=False)
    meta = json.loads((run / "model" / "model.json").read_text())
    baseline = json.loads((run / "model" / BASELINE_FILE).read_text())
    assert baseline["source"]["confidence_temperature"] == pytest.approx(meta["temperature"])
    pixels, _ = served(run, split_paths(run, "val"))
    expected = np.sort(imgclf.load(run).probabilities(pixels).max(1))  # what serving sees, calibrated
    got = np.sort(np.asarray(baseline["statistics"]["confidence"]["sample"], dtype=np.float64))
    np.testing.assert_allclose(got, expected, atol=1e-3)
