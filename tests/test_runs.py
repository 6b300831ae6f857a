"""Run directories: --overwrite replaces only runs imgclf made, one writer at a time, nothing left
behind by a command that fails before training starts, --out naming a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synth import make_folder

import imgclf
from imgclf.errors import DataError, UserError
from imgclf.runs import LOCK, MARKER, claim_run_dir, is_run_dir, run_lock

HOLD_LOCK = """
import sys, time
from imgclf.runs import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def project_folder(root: Path) -> Path:
    """A user's folder that merely looks like a run: a config.yaml beside source code, a model/."""
    (root / "model").mkdir(parents=True)
    (root / "config.yaml").write_text("epochs: 3\n")
    (root / "train.py").write_text("print('my code')\n")
    (root / "model" / "notes.txt").write_text("mine\n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("only", [None, "config.yaml", "model"])
def test_overwrite_refuses_a_folder_imgclf_did_not_create(tmp_path, only):
    root = project_folder(tmp_path / "project")
    if only == "config.yaml":
        (root / "train.py").unlink()
        (root / "model" / "notes.txt").unlink()
        (root / "model").rmdir()
    elif only == "model":
        (root / "config.yaml").unlink()
        (root / "train.py").unlink()
    before = snapshot(root)
    with pytest.raises(UserError, match=f"not created by imgclf train.*{MARKER}"):
        with claim_run_dir(root, overwrite=True):
            pass
    assert snapshot(root) == before and not (root / LOCK).exists()  # untouched, not even a lock file


def test_a_non_empty_folder_needs_overwrite(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not empty; choose another --out or pass --overwrite"):
        with claim_run_dir(tmp_path / "run"):
            pass


def test_overwrite_replaces_a_run_only_once_training_starts(tmp_path):
    root = tmp_path / "run"
    with claim_run_dir(root) as claim:
        claim.start()
        (root / "metrics.jsonl").write_text("old\n")
    assert is_run_dir(root)
    with pytest.raises(DataError):  # fails before training starts: the old run is kept
        with claim_run_dir(root, overwrite=True):
            raise DataError("no images")
    assert (root / "metrics.jsonl").read_text() == "old\n"
    with claim_run_dir(root, overwrite=True) as claim:
        assert (root / "metrics.jsonl").exists()
        claim.start()
        assert sorted(p.name for p in root.iterdir()) == sorted([LOCK, MARKER])
    marker = json.loads((root / MARKER).read_text())
    assert marker["imgclf_version"] == imgclf.__version__ and marker["created"]


def test_a_failure_before_training_removes_only_what_it_created(tmp_path):
    out = tmp_path / "runs" / "a" / "run"
    with pytest.raises(DataError):
        with claim_run_dir(out):
            assert is_run_dir(out)  # marked at once: a second process sees a run in use
            raise DataError("no images")
    assert not (tmp_path / "runs").exists()  # the parents it made are gone too
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        with claim_run_dir(empty):
            raise DataError("no images")
    assert empty.is_dir() and not any(empty.iterdir())  # a folder that existed stays, as empty as it was


def test_out_naming_a_file_is_one_sentence(tmp_path):
    (tmp_path / "f.txt").write_text("keep me")
    with pytest.raises(UserError, match="is an existing file; give a folder path"):
        with claim_run_dir(tmp_path / "f.txt"):
            pass
    assert (tmp_path / "f.txt").read_text() == "keep me"


def test_a_second_writer_is_told_who_holds_the_run_and_a_killed_holder_frees_it(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"in use by process {holder.pid} \(`-c .*`, started .*\); wait for it"):
            with run_lock(root):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs; the kernel releases the lock
        holder.wait()
    with run_lock(root):
        with run_lock(root):  # re-entrant within a process
            pass


@pytest.mark.slow
def test_train_leaves_nothing_behind_when_the_data_is_unusable(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    with pytest.raises(DataError):
        imgclf.train(tmp_path / "data", out=tmp_path / "runs" / "x", epochs=1)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_train_overwrite_keeps_a_project_folder(tmp_path):
    data = make_folder(tmp_path / "d", per_class=4)
    project = project_folder(tmp_path / "project")
    before = snapshot(project)
    with pytest.raises(UserError, match="not created by imgclf train"):
        imgclf.train(data, out=project, epochs=1, overwrite=True)
    assert snapshot(project) == before


@pytest.mark.slow
def test_a_second_training_into_a_run_in_use_is_refused(tmp_path):
    data = make_folder(tmp_path / "d", per_class=30)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "imgclf", "train", str(data), "--out", str(out), "--epochs", "500", "--batch-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if json.loads((out / LOCK).read_text())["pid"] == proc.pid and (out / "config.yaml").exists():
                    break  # locked, and far enough to be resumable
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the first training ended before the test could race it"
        for overwrite in (False, True):
            with pytest.raises(UserError, match=rf"in use by process {proc.pid} \(`__main__.py train"):
                imgclf.train(data, out=out, epochs=1, overwrite=overwrite)
        with pytest.raises(UserError, match=f"in use by process {proc.pid}"):
            imgclf.train(resume=out)
        assert is_run_dir(out)  # the run being written was not replaced
    finally:
        proc.kill()
        proc.wait()


def test_evaluate_and_export_wait_for_no_one_they_refuse_a_run_in_use(digits_run_copy):
    """One writer per run: evaluate and export write into the run, so a run another process holds
    (a training, another evaluation) is refused with the holder named, and nothing is written."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(digits_run_copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by process {holder.pid}"):
            imgclf.evaluate(digits_run_copy, robustness=False, explain=False)
        with pytest.raises(UserError, match=f"in use by process {holder.pid}"):
            imgclf.export(digits_run_copy)
        assert not (digits_run_copy / "eval").exists() and not (digits_run_copy / "export").exists()
    finally:
        holder.kill()
        holder.wait()
    imgclf.evaluate(digits_run_copy, robustness=False, explain=False)  # free again: it runs
    assert (digits_run_copy / "eval" / "metrics.json").exists()
