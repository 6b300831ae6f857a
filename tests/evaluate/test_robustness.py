"""`imgclf robustness` on the shared digits run: the clean figure agrees with `imgclf evaluate`,
corrupted figures agree with an independent computation (scikit-learn on the same corrupted
pixels), and the files and the CLI say the same."""

from __future__ import annotations

import csv
import inspect
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from runcopy import copy_run
from sklearn.metrics import accuracy_score

from imgclf.cli import cli, main
from imgclf.data.run_images import RunImages
from imgclf.errors import UserError
from imgclf.evaluate.corruptions import CORRUPTIONS, corrupt
from imgclf.evaluate.robustness import robustness
from imgclf.predict import load
from imgclf.runs import open_run


@pytest.fixture(scope="module")
def run_and_report(digits_run, tmp_path_factory):
    run = copy_run(digits_run, tmp_path_factory.mktemp("robustness") / "run")
    return run, robustness(run)


def test_report_files_and_their_consistency(run_and_report):
    run, rep = run_and_report
    out = run / "eval"
    assert json.loads((out / "robustness.json").read_text()) == rep
    assert Image.open(out / "robustness.png").size[0] > 300
    with open(out / "robustness.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 + 3 * len(CORRUPTIONS) and rows[0]["corruption"] == "clean"

    clean = rep["clean_accuracy"]
    assert rep["split"] == "test" and rep["n"] == 180 and clean > 0.9
    assert [(x["corruption"], x["severity"]) for x in rep["results"]] == [(c, s) for c in CORRUPTIONS for s in (1, 2, 3)]
    for x, row in zip(rep["results"], rows[1:]):
        assert x["relative_drop"] == pytest.approx((clean - x["accuracy"]) / clean)
        assert float(row["accuracy"]) == pytest.approx(x["accuracy"], abs=1e-6)
    drops = [x["relative_drop"] for x in rep["results"]]
    assert rep["mean_relative_drop"] == pytest.approx(np.mean(drops))
    for p in rep["per_corruption"]:
        mine = [x for x in rep["results"] if x["corruption"] == p["corruption"]]
        assert p["mean_accuracy"] == pytest.approx(np.mean([x["accuracy"] for x in mine]))
    worst = min(rep["results"], key=lambda x: x["accuracy"])
    assert rep["worst"]["accuracy"] == worst["accuracy"]
    # Strong corruptions hurt: a digits model never saw dark or washed-out images.
    by = {(x["corruption"], x["severity"]): x["accuracy"] for x in rep["results"]}
    assert by[("contrast", 3)] < clean - 0.3 and by[("low_light", 3)] < clean - 0.3
    assert by[("occlusion", 3)] < by[("occlusion", 1)]


def test_clean_accuracy_equals_evaluate(run_and_report):
    from imgclf.evaluate.evaluate import evaluate

    run, rep = run_and_report
    params = inspect.signature(evaluate).parameters
    options = {k: False for k in ("robustness", "explain", "label_issues") if k in params}
    metrics = evaluate(run, **options).metrics
    assert metrics["n"] == rep["n"]
    assert rep["clean_accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)


def test_corrupted_accuracy_matches_an_independent_computation(run_and_report):
    run, _ = run_and_report
    predictor = load(run, precision="fp32", backend="torch")
    mine = robustness(run, predictor=predictor, severities=(2,), corruptions=("rotation", "gaussian_noise"), seed=3)
    part = RunImages(open_run(run), predictor.preprocess, predictor.classes).split("test")
    pixels = np.ascontiguousarray(part.pixels[part.rows])
    for x in mine["results"]:
        # One batch holds all 180 images, so its seed is the one robustness() derives for batch 0.
        bad = corrupt(pixels, x["corruption"], 2, seed=3 * 1_000_003)
        expected = accuracy_score(part.labels, predictor.probabilities(bad).argmax(1))
        assert x["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert mine["clean_accuracy"] == pytest.approx(accuracy_score(part.labels, predictor.probabilities(pixels).argmax(1)))


def test_limit_and_severities_and_determinism(run_and_report):
    run, _ = run_and_report
    predictor = load(run, precision="fp32", backend="torch")
    a = robustness(run, predictor=predictor, limit=30, severities=(3,))
    b = robustness(run, predictor=predictor, limit=30, severities=(3,))
    assert a["n"] == 30 and len(a["results"]) == len(CORRUPTIONS)
    assert {x["severity"] for x in a["results"]} == {3}
    assert a == b
    assert a["tta"] == "none" and a["precision"] == "fp32"
    with pytest.raises(UserError, match="--tta"):
        robustness(run, predictor=predictor, tta="rotate")


def test_cli_prints_the_table_and_refuses_bad_severities(run_and_report, capsys):
    run, _ = run_and_report
    result = CliRunner().invoke(cli, ["robustness", str(run), "--limit", "30", "--severities", "1,3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "severity 3" in result.output and "mean relative drop" in result.output
    assert all(c in result.output for c in CORRUPTIONS)
    for bad in ("4", "x"):
        with pytest.raises(SystemExit) as exc:
            main(["robustness", str(run), "--severities", bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: ") and "severities" in err and "Traceback" not in err
