"""The launcher's contract with its workers: where a worker is, what it reports, who prints."""

from __future__ import annotations

import json

import pytest

from imgclf import launch
from imgclf.errors import UserError

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}


def test_a_worker_reads_its_place_from_torchruns_environment(monkeypatch):
    for k in TORCHRUN:
        monkeypatch.delenv(k, raising=False)
    assert launch.launch_env() == launch.LaunchEnv(0, 1, 0, 1) and launch.needs_launch(2) and not launch.needs_launch(1)
    for k, v in TORCHRUN.items():
        monkeypatch.setenv(k, v)
    assert launch.launch_env() == launch.LaunchEnv(3, 4, 1, 2)
    assert not launch.needs_launch(2)  # already one of the processes: never launch again


def test_a_workers_user_error_goes_to_the_launcher_once(monkeypatch, tmp_path):
    monkeypatch.setenv(launch.REPORT_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_info, launch.worker_reports():
        raise UserError("--batch-size 63 cannot be split evenly across 2 processes")
    assert exit_info.value.code == 2
    assert (tmp_path / "error-00001.txt").read_text() == "--batch-size 63 cannot be split evenly across 2 processes"
    launch.report({"x": 1})  # rank 1 reports nothing
    assert not (tmp_path / "result.json").exists()
    assert not launch.shows_output()


def test_rank_zero_reports_and_a_lone_process_prints(monkeypatch, tmp_path):
    for k in TORCHRUN:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv(launch.REPORT_ENV, raising=False)
    assert launch.shows_output()
    with pytest.raises(UserError), launch.worker_reports():  # outside a launch: the error propagates as usual
        raise UserError("plain")
    monkeypatch.setenv(launch.REPORT_ENV, str(tmp_path))
    launch.report({"epochs": 3})
    assert json.loads((tmp_path / "result.json").read_text()) == {"epochs": 3}
    assert not launch.shows_output()  # the launcher prints the summary
