"""Data-parallel training (DDP, gloo) on 2 CPU processes: it trains like one process with the same
global batch, only rank 0 writes the run, a run killed with SIGKILL resumes where it stopped, and
a worker's mistake comes back as one sentence.

Tolerance of "like one process": the same images make up every global batch and batch norm uses
the global batch's statistics (GlobalBatchNorm), so the two differ only in floating-point
rounding: sums taken in another order (the gradient all-reduce, the norm's statistics, each loss
over 32 images instead of 64) and convolution kernels chosen for 32 images rather than 64. This
net's fp32 gradient is ill-conditioned at initialisation (it is already 2% away from the fp64
gradient, in one process), and SGD carries such differences along. Measured over these 2
epochs: training losses 0.05% and 0.4% apart, validation loss 3%, validation accuracy 2 of 180
images; one process on 2 threads instead of 1 differs from itself as much (0.1%, 0.4%, 2.3%, 3
images). Asserted: training losses within 2%, validation loss within 10%, accuracy within 5 images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from checkpoint_wait import wait_for_checkpoint
from safetensors.numpy import load_file

import imgclf
from imgclf.errors import UserError
from imgclf.train.budget import StepPlan
from imgclf.train.callbacks import Callback
from imgclf.train.config import TrainConfig
from imgclf.train.distributed_launch import as_flags, result_from_json, result_to_json
from imgclf.train.fit import TrainResult, fit

# Nothing random but the data order: no augmentation, no dropout; SGD (Adam would magnify
# float-level differences in near-zero gradients); a mid-epoch checkpoint every 5 steps.
OPTIONS = ["--preset", "none", "--model", "simple_cnn", "--epochs", "2", "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.02",
           "--no-flip", "--crop-padding", "0", "--dropout", "0", "--precision", "fp32", "--seed", "1",
           "--checkpoint-every", "5"]  # fmt: skip


def imgclf_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "imgclf", *map(str, args)]


def torchrun_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "imgclf", *map(str, args)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # One thread per process whichever way it is launched: kernels' results can depend on it.
    return {**os.environ, "IMGCLF_CACHE_DIR": str(tmp_path_factory.mktemp("ddp-cache")), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, env):
    """The same run trained by one process and by two (`--nproc 2`)."""
    root = tmp_path_factory.mktemp("ddp")
    subprocess.run(imgclf_cmd("train", "builtin:digits", "--out", root / "one", *OPTIONS), check=True, env=env, capture_output=True)
    subprocess.run(imgclf_cmd("train", "builtin:digits", "--out", root / "two", "--nproc", "2", *OPTIONS), check=True, env=env,
                   capture_output=True)  # fmt: skip
    return root / "one", root / "two"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    one, two = map(metrics, runs)
    assert [r["step"] for r in one] == [r["step"] for r in two] == [22, 44]  # 1,437 images / 64: the same global steps
    for a, b in zip(one, two):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.02)
    assert abs(two[-1]["val_accuracy"] - one[-1]["val_accuracy"]) <= 5 / 180 + 1e-9
    assert two[-1]["val_loss"] == pytest.approx(one[-1]["val_loss"], rel=0.1)
    assert two[-1]["val_accuracy"] > 0.8  # and it learned


@pytest.mark.slow
def test_only_rank_zero_writes_and_the_checkpoint_holds_every_rank(runs):
    one, two = runs
    names = lambda run: sorted(str(p.relative_to(run)) for p in run.rglob("*") if ".tmp" not in p.name)  # noqa: E731
    assert names(two) == names(one)  # no second copy of anything, no stray temporary file
    assert yaml.safe_load((two / "config.yaml").read_text())["nproc"] == 2  # --config reproduces it on 2 processes
    assert yaml.safe_load((one / "config.yaml").read_text())["nproc"] == 1
    last = json.loads((two / "checkpoints" / "last.json").read_text())
    assert last["world_size"] == 2 and last["rank_mix_rng"][1] is not None
    tensors = load_file(two / "checkpoints" / last["tensors"])
    assert {"rng.torch", "rank1.rng.torch", "rank1.rng.loader"} <= set(tensors)
    assert not np.array_equal(tensors["rng.torch"], tensors["rank1.rng.torch"])  # each rank's own draws


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (the launcher and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_where_it_stopped(runs, env, tmp_path):
    marker = f"IMGCLF_TEST_MARK={uuid.uuid4().hex}"
    victim = tmp_path / "killed"
    key, value = marker.split("=")
    proc = subprocess.Popen(torchrun_cmd("train", "builtin:digits", "--out", victim, *OPTIONS), env={**env, key: value},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_checkpoint(proc, victim, lambda st: st.get("step", 0) >= 10 and st.get("batch_in_epoch", 0) > 0, timeout=600)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's process group; its workers have sessions of their own
    proc.wait()
    deadline = time.monotonic() + 30
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _marked(marker), "workers outlived their killed launcher"
    killed_at = json.loads((victim / "checkpoints" / "last.json").read_text())
    assert killed_at["batch_in_epoch"] > 0 and killed_at["world_size"] == 2

    out = subprocess.run(imgclf_cmd("train", "--resume", victim), env=env, capture_output=True, text=True)  # 2 processes again
    assert out.returncode == 0, out.stderr
    assert f"resuming {victim} at epoch {killed_at['epoch']}, step {killed_at['step']}" in out.stderr
    assert [r["epoch"] for r in metrics(victim)] == [1, 2]
    # Every rank continued with its own random states: the weights of the uninterrupted run.
    full, resumed = load_file(runs[1] / "model" / "model.safetensors"), load_file(victim / "model" / "model.safetensors")
    for k in full:
        np.testing.assert_array_equal(full[k], resumed[k], err_msg=k)


@pytest.mark.slow
def test_a_workers_mistake_is_one_sentence_and_leaves_nothing(env, tmp_path):
    out = subprocess.run(imgclf_cmd("train", "builtin:digits", "--out", tmp_path / "odd", "--nproc", "2", "--batch-size", "63",
                                    "--epochs", "1"), env=env, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("cannot be split evenly across 2 processes") == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "odd").exists()  # claimed by rank 0, removed again: training never started


# ------------------------------------------------------------------------------ no training needed


def test_a_time_plan_is_the_shared_one():
    now = [0.0]
    plan = StepPlan(steps_per_epoch=10, epochs=100, budget=100.0, t_start=0.0, clock=lambda: now[0])
    plan.start()
    asked = []
    plan.share = lambda total: asked.append(total) or 57  # rank 0 said 57
    now[0] = 10.0
    plan.replan(10)
    assert asked and asked[0] != 57 and plan.total == 57


def test_nproc_outside_a_launcher_is_refused(tmp_path):
    with pytest.raises(UserError, match="--nproc 2"):
        fit(TrainConfig(data="builtin:digits", out=str(tmp_path / "run"), nproc=2))
    assert not (tmp_path / "run").exists()


def test_what_cannot_reach_other_processes_is_refused_before_any_starts(tmp_path):
    with pytest.raises(UserError, match="callbacks"):
        imgclf.train("builtin:digits", out=tmp_path / "run", nproc=2, callbacks=[Callback()])
    with pytest.raises(UserError, match="--epochs"):
        imgclf.train("builtin:digits", out=tmp_path / "run", nproc=2, epochs=0)
    assert not (tmp_path / "run").exists()


def test_resume_options_become_the_same_flags():
    assert as_flags({"epochs": 3, "nproc": 2, "compile": False, "log": ["tensorboard", "mlflow"], "cache_dir": None, "device": "cpu"}) == [
        "--epochs=3", "--nproc=2", "--no-compile", "--log=tensorboard", "--log=mlflow", "--device=cpu",
    ]  # fmt: skip


def test_a_result_crosses_the_process_boundary_intact(tmp_path):
    cfg = TrainConfig(data="builtin:digits", out=str(tmp_path), nproc=2, lr=0.1)
    result = TrainResult(tmp_path, 3, 2, 0.9, 0.25, 12.5, 1797, 0, {"train": 1437, "val": 180, "test": 180}, "bf16", cfg, True)
    back = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert back == result
