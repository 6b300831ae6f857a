"""Runs side by side: the options that differ, the metrics, the curves in one PNG; and the
`imgclf runs` commands that print them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fake_runs import fake_run
from PIL import Image

from imgclf.cli import cli
from imgclf.errors import UserError
from imgclf.registry.compare import compare_runs


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_differences_metrics_and_curves(tmp_path):
    a = fake_run(tmp_path / "runs" / "a", epochs_done=3, step=30, lr=0.001, batch_size=64)
    b = fake_run(tmp_path / "runs" / "b", epochs_done=2, lr=0.01, batch_size=64, log=["mlflow"])
    result = compare_runs([a, b], plot=tmp_path / "curves.png")
    assert [r.name for r in result.runs] == ["a", "b"]
    differing = {row.key: row.values for row in result.differences}
    assert differing == {"lr": [0.001, 0.01], "log": [None, ["mlflow"]]}
    assert "out" not in {row.key for row in result.config}  # a run's own path always differs: not an option
    assert "batch_size" not in differing and any(row.key == "batch_size" for row in result.config)
    metrics = dict(result.metrics)
    assert metrics["status"] == ["finished", "interrupted"] and metrics["best_val_accuracy"] == [0.8, 0.8]
    assert metrics["epochs"] == [3, 2]
    image = Image.open(result.plot)
    assert image.format == "PNG" and image.size[0] > 600


def test_same_names_in_different_folders_are_told_apart(tmp_path):
    a = fake_run(tmp_path / "x" / "run", epochs_done=1)
    b = fake_run(tmp_path / "y" / "run", epochs_done=1)
    assert [r.name for r in compare_runs([a, b]).runs] == ["x/run", "y/run"]


def test_refusals(tmp_path):
    run = fake_run(tmp_path / "a", epochs_done=1)
    with pytest.raises(UserError, match="not a run directory"):
        compare_runs([run, tmp_path / "missing"])
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a run directory"):
        compare_runs([run, tmp_path / "plain"])
    with pytest.raises(UserError, match=".png"):
        compare_runs([run], plot=tmp_path / "curves.pdf")
    empty = fake_run(tmp_path / "e", epochs_done=0, checkpoint=False)
    with pytest.raises(UserError, match="no curves"):
        compare_runs([empty], plot=tmp_path / "c.png")
    with pytest.raises(UserError, match="give the run directories"):
        compare_runs([])


def test_cli_lists_and_compares(tmp_path):
    fake_run(tmp_path / "runs" / "a", epochs_done=3, step=30, lr=0.001)
    fake_run(tmp_path / "runs" / "nested" / "b", epochs_done=1, lr=0.01)
    listed = invoke("runs", tmp_path / "runs")
    assert listed.exit_code == 0
    assert "nested/b" in listed.output and "finished" in listed.output and "interrupted" in listed.output
    assert "2 runs: 1 finished, 1 interrupted" in listed.output
    assert invoke("runs", "list", tmp_path / "runs").output == listed.output  # `runs DIR` is `runs list DIR`
    rows = json.loads(invoke("runs", tmp_path / "runs", "--json").output)
    assert [(r["name"], r["status"], r["best_val_accuracy"]) for r in rows] == [("a", "finished", 0.8), ("nested/b", "interrupted", 0.6)]
    assert "No runs under" in invoke("runs", tmp_path / "runs" / "a" / "checkpoints").output

    compared = invoke("runs", "compare", tmp_path / "runs" / "a", tmp_path / "runs" / "nested" / "b", "--diff-only",
                      "--plot", tmp_path / "c.png")  # fmt: skip
    assert compared.exit_code == 0
    assert "* lr" in compared.output and "* epochs" not in compared.output and "model" not in compared.output.split("metric")[0]
    assert "1 option differs (marked *)." in compared.output
    assert f"Curves: {tmp_path / 'c.png'}" in compared.output and (tmp_path / "c.png").is_file()
    data = json.loads(invoke("runs", "compare", tmp_path / "runs" / "a", tmp_path / "runs" / "nested" / "b", "--json").output)
    assert [row["key"] for row in data["config"] if row["differs"]] == ["lr"]
    refused = CliRunner().invoke(cli, ["runs", "compare", str(tmp_path / "nope")])
    assert refused.exit_code != 0 and "not a run directory" in str(refused.exception or refused.output)
