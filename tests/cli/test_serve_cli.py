"""`imgclf serve`, `imgclf feedback export` and `imgclf monitor` through the CLI (the running
service is exercised in tests/serve/; `monitor` against a live server in tests/serve/test_workers.py)."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from click.testing import CliRunner
from synth import encode, shape_image

from imgclf.cli import cli, main
from imgclf.cli.serve import drift_text
from imgclf.serve.store import open_store

HEAVY = {"torch", "torchvision", "timm", "sklearn", "onnxruntime", "fastapi", "uvicorn", "prometheus_client"}


@pytest.mark.parametrize("command", [["serve"], ["feedback"], ["feedback", "export"], ["monitor"]])
def test_help_imports_nothing_heavy(command):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "imgclf", *command, "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "Usage: imgclf" in proc.stdout and not modules & HEAVY, sorted(modules & HEAVY)


def test_feedback_export_writes_a_manifest(tmp_path):
    png = encode(shape_image("circle", 32), "PNG")
    with open_store(tmp_path / "store") as store:
        p = store.record_prediction(png, model_version="demo@1", topk=[{"label": "square", "probability": 0.6}], unsure=True)
        store.add_feedback("circle", prediction_id=p.id, who="ann", note="round")
    result = CliRunner().invoke(cli, ["feedback", "export", str(tmp_path / "store"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "wrote 1 image(s) (1 user)" in result.output
    rows = list(csv.DictReader(open(tmp_path / "out" / "manifest.csv", newline="")))
    assert [(r["label"], r["who"], r["predicted_label"], r["note"]) for r in rows] == [("circle", "ann", "square", "round")]
    assert (tmp_path / "out" / rows[0]["path"]).read_bytes() == png


def test_feedback_export_of_something_that_is_not_a_store(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["feedback", "export", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "is not a feedback store" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()  # a mistyped store is not created


@pytest.mark.parametrize("url, words", [("ftp://host/", "not an http(s) URL"), ("http://127.0.0.1:9", "cannot reach")])
def test_monitor_refusals(url, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["monitor", url, "--timeout", "5"])
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_drift_text_shows_each_statistic_and_the_verdict():
    report = {
        "url": "http://h:1",
        "info": {"model": {"version": "demo@abc", "architecture": "simple_cnn"}, "classes": ["a", "b"]},
        "drift": {"available": True, "drifted": True, "drifted_statistics": ["brightness"], "window": 500, "worker": 7,
                  "statistics": {"brightness": {"n": 300, "psi": 2.5, "ks_pvalue": 1e-30, "drifted": True},
                                 "width": {"n": 10, "psi": None, "ks_pvalue": None, "drifted": False}}},
    }  # fmt: skip
    text = drift_text(report)
    assert "demo@abc" in text and "DRIFTED (brightness)" in text
    brightness = next(line for line in text.splitlines() if line.startswith("brightness"))
    assert "2.500" in brightness and "yes" in brightness
    assert next(line for line in text.splitlines() if line.startswith("width")).split()[2] == "-"
    report["drift"] = {"available": False, "reason": "no baseline"}
    assert "unavailable (no baseline)" in drift_text(report)
