"""`imgclf tune` end to end on tiny data: trials are run directories, the best configuration
retrained with --config reproduces its score, a study resumes, failed trials do not stop it,
two worker processes share it (SQLite and PostgreSQL), and pruning ends a run as finished."""

from __future__ import annotations

import csv
import os

import optuna
import pytest
from PIL import Image
from synth import make_folder

import imgclf
from imgclf.cli import main
from imgclf.errors import UserError
from imgclf.registry.scan import list_runs, read_run
from imgclf.train.config import TrainConfig
from imgclf.train.fit import fit
from imgclf.tune.pruning import TrialPruning
from imgclf.tune.storage import open_storage, storage_url

pytestmark = pytest.mark.slow

TINY = "img_size: 16\nmodel: [lenet5, simple_cnn]\nepochs: {low: 1, high: 2}\nbatch_size: [16, 32]\n"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes") / "d", per_class=20, size=16)


def space_file(tmp_path, text: str = TINY):
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tiny_study_reports_and_its_best_config_reproduces(shapes, tmp_path, capsys):
    out = tmp_path / "tune"
    main(["tune", str(shapes), "--trials", "3", "--space", str(space_file(tmp_path)), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "3 trials, 3 complete" in printed and "Best: trial" in printed and f"imgclf train --config {out / 'best.yaml'}" in printed

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    runs = list_runs(out)
    assert [r.name for r in runs] == ["trial-0000", "trial-0001", "trial-0002"]
    assert {r.status for r in runs} == {"finished"} and {r.model for r in runs} <= {"lenet5", "simple_cnn"}
    for name in ("optimization_history.png", "intermediate_values.png", "param_importances.png"):
        assert Image.open(out / name).size[0] > 100

    best = max(rows, key=lambda r: float(r["value"]))
    config = TrainConfig.from_yaml(out / "best.yaml")  # `imgclf train --config` reads it like this
    assert "out" not in TrainConfig.keys_in_yaml(out / "best.yaml")
    trial_config = read_run(best["run_dir"]).config
    assert config.to_dict() == {**trial_config, "out": ""}
    again = imgclf.train(config=out / "best.yaml", out=tmp_path / "retrained")
    assert again.best_val_accuracy == float(best["value"])  # same seed, same score

    # The same command with more trials resumes the study: one more trial, the others untouched.
    before = (out / "trial-0000" / "metrics.jsonl").stat().st_mtime_ns
    result = imgclf.tune(shapes, trials=4, space=space_file(tmp_path), out=out)
    assert [t.number for t in result.trials] == [0, 1, 2, 3] and (out / "trial-0003" / "config.yaml").is_file()
    assert (out / "trial-0000" / "metrics.jsonl").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="holds the trials of study"):
        imgclf.tune(shapes, trials=4, study="another", space=space_file(tmp_path), out=out)
    with pytest.raises(UserError, match="started with another space"):
        imgclf.tune(shapes, trials=5, space=space_file(tmp_path, TINY + "label_smoothing: 0.1\n"), out=out)


def test_failed_trials_are_marked_and_the_study_goes_on(shapes, tmp_path):
    out = tmp_path / "tune"
    out.mkdir()
    study = optuna.create_study(storage=open_storage(storage_url(None, out)), study_name="tune", direction="maximize")
    study.enqueue_trial({"model": "lenet5"})  # LeNet-5's 5x5 kernels do not fit an 8px image
    study.enqueue_trial({"model": "simple_cnn"})
    result = imgclf.tune(shapes, trials=2, space=space_file(tmp_path, "model: [lenet5, simple_cnn]\nepochs: 1\n"), out=out,
                         img_size=8)  # fmt: skip
    failed, complete = result.trials
    assert failed.state == "fail" and "lenet5 cannot take 8 px images" in failed.error
    assert complete.state == "complete" and result.best.number == 1 and result.best_config.is_file()


def test_data_that_cannot_be_trained_on_stops_the_study(tmp_path):
    data = make_folder(tmp_path / "one", classes=("circle",), per_class=10, size=16)
    with pytest.raises(UserError, match="class"):
        imgclf.tune(data, trials=3, out=tmp_path / "tune", img_size=16)
    with pytest.raises(UserError, match="does not exist"):
        imgclf.tune(tmp_path / "missing", trials=3, out=tmp_path / "tune2")
    with pytest.raises(UserError, match="val-fraction"):
        imgclf.tune(data, trials=3, out=tmp_path / "tune3", val_fraction=0.0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_worker_processes_share_one_study(shapes, tmp_path, backend, request):
    storage = request.getfixturevalue("postgres_storage") if backend == "postgresql" else None
    out = tmp_path / "tune"
    result = imgclf.tune(shapes, trials=4, workers=2, storage=storage, out=out,
                         space=space_file(tmp_path, "img_size: 16\nmodel: lenet5\nepochs: 1\nbatch_size: 16\n"))  # fmt: skip
    assert result.storage.startswith("sqlite" if storage is None else "postgresql+psycopg://imgclf:***@")
    assert 4 <= len(result.trials) <= 5  # a race between the two can add one
    assert {t.state for t in result.trials} == {"complete"}
    assert {t.worker for t in result.trials} == {0, 1}  # both processes ran trials
    assert len({t.run_dir for t in result.trials}) == len(result.trials) and all(os.path.isdir(t.run_dir) for t in result.trials)


class PruneAtEpoch:
    """A stand-in for an Optuna trial whose pruner says stop after ``epoch``."""

    number = 7

    def __init__(self, epoch: int):
        self.epoch, self.reports = epoch, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.reports[-1][0] >= self.epoch


def test_a_pruned_run_is_a_finished_run(shapes, tmp_path):
    trial = PruneAtEpoch(1)
    cfg = TrainConfig(data=str(shapes), out=str(tmp_path / "run"), model="lenet5", img_size=16, epochs=3, batch_size=16)
    result = fit(cfg, callbacks=[TrialPruning(trial, "val_accuracy")])
    assert result.epochs == 1 and result.stopped_early and [s for s, _ in trial.reports] == [1]
    assert read_run(tmp_path / "run").status == "finished"
