"""The runs registry: which folders are runs, and their status (running: another process holds the
writer lock; finished: the last checkpoint reached its plan's end or was stopped on purpose;
interrupted: neither), read from the files training writes, without taking the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_runs import fake_run

from imgclf.errors import UserError
from imgclf.registry import scan
from imgclf.registry.scan import find_runs, list_runs, lock_is_held, read_run
from imgclf.runs import LOCK, run_lock

HOLD = """
import sys
from imgclf.runs import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_statuses_from_the_checkpoint(tmp_path):
    finished = fake_run(tmp_path / "finished", epochs_done=3, step=30)
    stopped = fake_run(tmp_path / "stopped", epochs_done=2, stopped_early=True)  # early stopping, a pruned trial
    interrupted = fake_run(tmp_path / "interrupted", epochs_done=2)
    no_checkpoint = fake_run(tmp_path / "crashed-early", epochs_done=0, checkpoint=False)
    status = {r.name: r.status for r in list_runs(tmp_path)}
    assert status == {"crashed-early": "interrupted", "finished": "finished", "interrupted": "interrupted", "stopped": "finished"}
    info = read_run(finished)
    assert (info.model, info.data, info.epochs, info.planned_epochs, info.train_seconds) == ("simple_cnn", "builtin:digits", 3, 3, 4.5)
    assert (info.best_epoch, info.best_val_accuracy, info.final_train_loss) == (2, 0.8, 1.0 / 3)
    assert info.started and info.test_accuracy is None
    assert read_run(interrupted).best_epoch == 2 and read_run(stopped).status == "finished"
    assert read_run(no_checkpoint).best_val_accuracy is None


def test_test_accuracy_and_lookahead(tmp_path):
    run = fake_run(tmp_path / "a", epochs_done=3, step=30)
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps({"accuracy": 0.93, "split": "test"}))
    assert read_run(run).test_accuracy == 0.93
    (run / "eval" / "metrics.json").write_text(json.dumps({"accuracy": 0.99, "split": "val"}))
    assert read_run(run).test_accuracy is None  # evaluated on another split: not a test accuracy
    ahead = fake_run(tmp_path / "b", epochs_done=3, step=30, weight_averaging="lookahead")
    assert (read_run(ahead).best_epoch, read_run(ahead).best_val_accuracy) == (3, 0.7)  # its final weights are the model


def test_running_while_another_process_holds_the_lock(tmp_path):
    run = fake_run(tmp_path / "r", epochs_done=1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert [r.status for r in list_runs(tmp_path)] == ["running"]
        assert lock_is_held(run / LOCK, held=None)
        with pytest.raises(UserError, match="in use by process"):  # listing took nothing: the holder still has it
            with run_lock(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert [r.status for r in list_runs(tmp_path)] == ["interrupted"]  # killed: the kernel released its lock


def test_a_lock_held_in_this_process_counts_too(tmp_path):
    run = fake_run(tmp_path / "r", epochs_done=1)
    with run_lock(run):
        assert read_run(run).status == "running"
    assert read_run(run).status == "interrupted"


def test_without_proc_locks_the_lock_is_probed(tmp_path, monkeypatch):
    monkeypatch.setattr(scan, "held_locks", lambda: None)
    run = fake_run(tmp_path / "r", epochs_done=1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert read_run(run).status == "running"
    finally:
        holder.kill()
        holder.wait()
    assert read_run(run).status == "interrupted"
    with run_lock(run):  # the probe released what it took
        pass


def test_what_counts_as_a_run_and_where_the_scan_goes(tmp_path):
    fake_run(tmp_path / "a", epochs_done=1)
    fake_run(tmp_path / "nested" / "deeper" / "b", epochs_done=1)
    fake_run(tmp_path / "a" / "checkpoints" / "not-a-run", epochs_done=1)  # inside a run's parts: not scanned
    fake_run(tmp_path / ".hidden" / "c", epochs_done=1)
    old = tmp_path / "before-markers"  # a run written before run directories had a marker
    old.mkdir()
    (old / "config.yaml").write_text("model: lenet5\n")
    (old / "metrics.jsonl").write_text('{"epoch": 1, "val_accuracy": 0.5}\n')
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "config.yaml").write_text("x: 1\n")  # a config alone is not a run
    os.symlink(tmp_path, tmp_path / "nested" / "loop")  # a link back up: not followed
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == ["a", "before-markers", "nested/deeper/b"]
    assert [r.name for r in list_runs(tmp_path)] == ["a", "before-markers", "nested/deeper/b"]
    assert list_runs(tmp_path / "a")[0].name == "a"  # a run given itself


def test_damaged_files_are_read_around(tmp_path):
    run = fake_run(tmp_path / "r", epochs_done=2)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')  # a line cut short by a crash
    (run / "config.yaml").write_text("{not yaml")
    (run / "checkpoints" / "last.json").write_text("[]")
    info = read_run(run)
    assert (info.epochs, info.status, info.model) == (2, "interrupted", None)


def test_bad_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_runs(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        list_runs(tmp_path / "file")
    assert list_runs(tmp_path) == []
