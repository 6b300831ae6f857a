"""Exact resume: a run killed part-way through an epoch and resumed ends with the weights of an
uninterrupted run; a crash during a checkpoint write leaves the previous checkpoint loadable; a
finished run can be extended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_wait import wait_for_checkpoint
from safetensors.numpy import load_file
from synth import make_folder

import imgclf
from imgclf.errors import UserError
from imgclf.train import checkpoint as ckpt

pytestmark = pytest.mark.slow

# Options that put state everywhere: momentum, lookahead, mixup's generator, dropout, augmentation.
OPTIONS = ["--model", "simple_cnn", "--epochs", "3", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05",
           "--weight-averaging", "lookahead", "--mixup", "0.4", "--label-smoothing", "0.1",
           "--checkpoint-every", "5", "--precision", "fp32", "--seed", "3"]  # fmt: skip


def imgclf_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "imgclf", *map(str, args)]


def weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(run / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("resume") / "d", classes=("circle", "square", "triangle", "cross"), per_class=250)


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(data, tmp_path):
    env = {**os.environ, "IMGCLF_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(imgclf_cmd("train", data, "--out", tmp_path / "full", *OPTIONS), check=True, env=env, capture_output=True)

    victim = tmp_path / "killed"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = subprocess.Popen(imgclf_cmd("train", data, "--out", victim, *OPTIONS), env=env, **quiet)
    wait_for_checkpoint(proc, victim, lambda st: st.get("epoch", 0) >= 2 and st.get("batch_in_epoch", 0) > 0, timeout=120, poll=0.005)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((victim / "checkpoints" / "last.json").read_text())
    assert killed_at["batch_in_epoch"] > 0  # the checkpoint it resumes from is mid-epoch

    out = subprocess.run(imgclf_cmd("train", "--resume", victim), check=True, env=env, capture_output=True, text=True)
    assert "resuming" in out.stderr
    full, resumed = weights(tmp_path / "full"), weights(victim)
    assert full.keys() == resumed.keys()
    for k in full:
        np.testing.assert_array_equal(full[k], resumed[k], err_msg=k)
    a = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (victim / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in b] == [1, 2, 3]  # no epoch logged twice
    assert a[-1]["val_accuracy"] == b[-1]["val_accuracy"] and a[-1]["step"] == b[-1]["step"]


def test_a_crash_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt.save_checkpoint(tmp_path, "last", model=model, optimizer=opt, extra_tensors={}, meta={"step": 1, "epoch": 1})
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def dies_half_way(tensors, filename):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)  # part of a file, then the process "dies"
        raise KeyboardInterrupt

    with torch.no_grad():
        model.weight.add_(1.0)
    monkeypatch.setattr(ckpt, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, "last", model=model, optimizer=opt, extra_tensors={}, meta={"step": 2, "epoch": 1})
    monkeypatch.undo()
    tensors, optim_state, meta = ckpt.load_checkpoint(tmp_path, "last")
    assert meta["step"] == 1
    assert torch.equal(ckpt.model_state(tensors)["weight"], before["weight"])
    restored = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(optim_state)
    assert torch.equal(restored.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"])


def test_checkpoints_are_not_pickles(data, tmp_path):
    imgclf.train(data, out=tmp_path / "run", epochs=1, batch_size=64)
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert {"last.json", "best.json"} <= set(files)
    assert all(f.endswith((".json", ".safetensors")) for f in files)


def test_a_finished_run_is_extended_and_options_cannot_change(data, tmp_path):
    run = tmp_path / "run"
    imgclf.train(data, out=run, epochs=1, batch_size=64)
    with pytest.raises(UserError, match="--epochs"):
        imgclf.train(resume=run)
    with pytest.raises(UserError, match="cannot change --lr"):
        imgclf.train(resume=run, epochs=1, lr=0.1)
    result = imgclf.train(resume=run, epochs=2)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and result.epochs == 3
    assert rows[1]["lr"] > rows[0]["lr"]  # a new cycle: the learning rate rose again after the first run's decay
    assert json.loads((run / "checkpoints" / "last.json").read_text())["step"] == rows[-1]["step"]


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Two finished one-epoch runs: 3 classes (sgd) and 4 classes (adamw), both simple_cnn."""
    root = tmp_path_factory.mktemp("finished")
    three = make_folder(root / "d3", per_class=8)
    four = make_folder(root / "d4", classes=("circle", "square", "triangle", "cross"), per_class=8)
    imgclf.train(three, out=root / "three", epochs=1, batch_size=8, optimizer="sgd", preset="none")
    imgclf.train(four, out=root / "four", epochs=1, batch_size=8, preset="none")
    return root


def tampered(finished_runs, tmp_path, name="three") -> Path:
    import shutil

    return Path(shutil.copytree(finished_runs / name, tmp_path / "run"))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("model", "lenet5", "checkpoint holds a simple_cnn but its config.yaml asks for lenet5"),
        ("optimizer", "adamw", "trained with SGD, not --optimizer adamw"),
    ],
)
def test_resume_against_an_edited_config_is_one_sentence(finished_runs, tmp_path, key, value, message):
    import yaml

    run = tampered(finished_runs, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, key: value}))
    with pytest.raises(UserError, match=message):
        imgclf.train(resume=run, epochs=1)


def test_resume_with_another_runs_checkpoint_names_the_mismatch(finished_runs, tmp_path):
    import shutil

    run = tampered(finished_runs, tmp_path)
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(finished_runs / "four" / "checkpoints", run / "checkpoints")
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("optimizer: sgd", "optimizer: adamw"))
    with pytest.raises(UserError, match="checkpoint has 4 classes but the run's data has 3"):
        imgclf.train(resume=run, epochs=1)
    index = run / "checkpoints" / "last.json"  # a checkpoint from before these fields were recorded
    meta = json.loads(index.read_text())
    for key in ("architecture", "num_classes", "optimizer_class"):
        meta.pop(key)
    index.write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"fc.weight is \[4, 128\] there, \[3, 128\] here"):
        imgclf.train(resume=run, epochs=1)
    result = subprocess.run(imgclf_cmd("train", "--resume", run, "--epochs", "1"), capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not fit a simple_cnn with 3 classes" in result.stderr.strip().splitlines()[-1]  # one sentence, last
