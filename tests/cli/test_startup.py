"""Start-up: `imgclf --help`, every command's --help and a mistyped option must not import PyTorch,
timm, scikit-learn (or the other heavy libraries). A behaviour test: which modules were imported,
read from `python -X importtime`, never how long it took (bench/startup.py measures that)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = {"torch", "torchvision", "timm", "sklearn", "onnx", "onnxruntime", "matplotlib", "cleanlab", "pytorch_grad_cam"}

COMMANDS = [
    [], ["train"], ["lr-find"], ["evaluate"], ["robustness"], ["explain"], ["predict"], ["export"],
    ["data"], ["data", "check"], ["data", "label-issues"], ["models"], ["bench"], ["bench", "train"], ["bench", "infer"],
    ["cache"], ["cache", "clear"],
]  # fmt: skip


def imported_by(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m imgclf ARGS`; return the process and the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "imgclf", *args], capture_output=True, text=True, timeout=120)
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return proc, modules


def test_importtime_output_is_parsed():
    """The check below would pass vacuously if -X importtime's format changed: torch must show up when imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import imgclf.models.factory"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch" in {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "imgclf")
def test_help_imports_nothing_heavy(command):
    proc, modules = imported_by(*command, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: imgclf" in proc.stdout
    assert not modules & HEAVY, f"`imgclf {' '.join(command)} --help` imported {sorted(modules & HEAVY)}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "x", "--epochz", "3"], "No such option '--epochz'"),
        (["train", "x", "--schedule", "cosnie"], "'cosnie' is not one of"),
        (["predict", "run", "x.png", "--backend", "tensorrt"], "'tensorrt' is not one of"),
        (["evaluate"], "Missing argument 'RUN'"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_usage_errors_exit_2_without_importing_anything_heavy(args, message):
    proc, modules = imported_by(*args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not modules & HEAVY, f"`imgclf {' '.join(args)}` imported {sorted(modules & HEAVY)}"


def test_import_imgclf_is_light():
    code = "import sys, imgclf; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not set(proc.stdout.split()) & HEAVY
