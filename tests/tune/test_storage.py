"""Where a study lives: storage URLs, and a study that outlives a killed worker (its trial is failed
by the heartbeat check and its parameters tried again), on SQLite and on a real PostgreSQL server
($IMGCLF_TEST_POSTGRES_URL, see conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest

from imgclf.errors import UserError
from imgclf.tune.storage import make_pruner, make_sampler, open_storage, shown, storage_url
from imgclf.tune.study import counted


def test_storage_urls(tmp_path):
    assert storage_url(None, tmp_path / "t") == f"sqlite:///{(tmp_path / 't' / 'study.db').resolve()}"
    assert storage_url("postgresql://u:p@h/db", tmp_path) == "postgresql+psycopg://u:p@h/db"  # psycopg 3, not psycopg2
    assert storage_url("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert storage_url("postgresql+psycopg://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    with pytest.raises(UserError, match="database URL"):
        storage_url("study.db", tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        storage_url(f"sqlite:///{tmp_path}/missing/study.db", tmp_path)
    assert shown("postgresql+psycopg://imgclf:secret@127.0.0.1:5432/x") == "postgresql+psycopg://imgclf:***@127.0.0.1:5432/x"


def test_unreachable_server_is_a_user_error():
    with pytest.raises(UserError, match=r"cannot open the study storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:9"):
        open_storage("postgresql+psycopg://u:secret@127.0.0.1:9/none?connect_timeout=2")


def test_pruners_and_samplers():
    assert isinstance(make_pruner("median", 10), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", 10), optuna.pruners.HyperbandPruner)
    with pytest.raises(UserError, match="--pruner"):
        make_pruner("asha", 10)
    # Two workers, or a restarted one, draw different first trials.
    first = [optuna.create_study(sampler=make_sampler(0, w, n)).ask().suggest_float("x", 0, 1) for w, n in ((0, 0), (1, 0), (0, 5))]
    assert len(set(first)) == 3
    assert optuna.create_study(sampler=make_sampler(0, 0, 0)).ask().suggest_float("x", 0, 1) == first[0]  # yet seeded


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_storage"), "study"  # a schema of its own: dropped after
    return storage_url(None, tmp_path), "study"


WORKER = """
import sys, time
import optuna
from imgclf.tune.storage import open_storage
study = optuna.load_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1], heartbeat=1, grace=3))
def objective(trial):
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("run_dir", "trial-a")
    print("started", flush=True)
    time.sleep(600)
study.optimize(objective, n_trials=1)
"""


def test_a_killed_workers_trial_is_retried_with_its_parameters(storage):
    url, name = storage
    optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize")
    proc = subprocess.Popen([sys.executable, "-c", WORKER, url, name], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=1, grace=3))
        assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.RUNNING]
        assert counted(study) == 1  # a running trial counts towards --trials
    finally:
        proc.kill()
        proc.wait()
    x = study.get_trials()[0].params["x"]
    time.sleep(4.5)  # past the grace period: no heartbeat since the kill
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert trials[1].params == {"x": x}  # the same parameters, tried again by the next worker
    assert counted(study) == 1  # the died trial does not count; its retry does

    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # a new worker takes the retry first
    assert study.get_trials()[1].state == optuna.trial.TrialState.COMPLETE and study.best_trial.params == {"x": x}
