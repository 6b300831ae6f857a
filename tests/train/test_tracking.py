"""Experiment tracking (--log tensorboard / mlflow): the option's values and checks, and what a
training run records, read back with TensorBoard's EventAccumulator and MLflow's client."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from synth import make_folder

import imgclf
from imgclf.errors import UserError
from imgclf.train.callbacks import Callback, default_callbacks
from imgclf.train.config import TrainConfig, resolve
from imgclf.train.tracking import MLflowLogger, TensorBoardLogger, params_of, tracking_uri


@pytest.mark.parametrize(
    ("value", "loggers"),
    [(None, []), ("tensorboard", ["tensorboard"]), ("mlflow, tensorboard", ["mlflow", "tensorboard"]),
     (["tensorboard", "mlflow,tensorboard"], ["tensorboard", "mlflow"]), ([], [])],
)  # fmt: skip
def test_log_option_values(value, loggers):
    cfg = resolve(None, data="d", out="o", log=value).validate()
    assert cfg.loggers() == loggers and cfg.log == value  # config.yaml keeps what was given
    kinds = [type(c) for c in default_callbacks(cfg) if isinstance(c, TensorBoardLogger | MLflowLogger)]
    assert kinds == [{"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}[n] for n in loggers]


@pytest.mark.parametrize(
    ("value", "message"),
    [("wandb", "--log must be tensorboard or mlflow, not 'wandb'"), (["mlflow", 3], "log must be"), (("mlflow",), "log must be"),
     (5, "log must be")],
)  # fmt: skip
def test_log_option_refusals(value, message):
    with pytest.raises(UserError, match=message):
        resolve(None, data="d", out="o", log=value).validate()


def test_log_in_config_files_and_on_the_command_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("log: [tensorboard, mlflow]\ntracking_uri: sqlite:///x.db\n")
    cfg = resolve(path, data="d", out="o").validate()
    assert cfg.loggers() == ["tensorboard", "mlflow"] and cfg.tracking_uri == "sqlite:///x.db"
    from imgclf.cli import cli

    seen = {}

    def fake_train(data, **options):
        seen.update(options)
        raise SystemExit(0)  # what the command would train with is all this test needs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(imgclf.api, "train", fake_train)
        CliRunner().invoke(cli, ["train", "d", "--out", "o", "--log", "tensorboard", "--log", "mlflow", "--log-dir", "tb"])
        assert seen["log"] == ["tensorboard", "mlflow"] and seen["log_dir"] == "tb"
        seen.clear()
        CliRunner().invoke(cli, ["train", "d", "--out", "o"])
        assert "log" not in seen  # not given: a --config file's value stands


def test_params_are_yaml_like_text():
    assert params_of({"lr": 0.002, "preset": None, "flip": True, "log": ["mlflow"], "model": "lenet5"}) == {
        "lr": "0.002", "preset": "null", "flip": "true", "log": '["mlflow"]', "model": "lenet5"}  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes") / "d", per_class=16, size=16)


def mlflow_run(uri: str, run_dir):
    from mlflow.tracking import MlflowClient

    tracking_uri(uri, run_dir)  # file stores need MLflow's opt-in, as training set it
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("imgclf")
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`imgclf.run_dir` = '{run_dir.resolve()}'")
    return client, run


@pytest.mark.slow
def test_a_run_logged_to_both_reads_back_with_their_own_readers(shapes, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = imgclf.train(shapes, out=out, model="lenet5", img_size=16, epochs=2, batch_size=16, log=["tensorboard", "mlflow"])
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for key in ("train_loss", "val_accuracy", "lr"):
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(r["epoch"], pytest.approx(r[key])) for r in epochs]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "    model: lenet5" in config_text and "    img_size: 16" in config_text
    assert events.Scalars("hparam/best_val_accuracy")[0].value == pytest.approx(result.best_val_accuracy)
    assert "model" in events.Tensors("artefacts/text_summary")[0].tensor_proto.string_val[0].decode()

    client, run = mlflow_run(f"file:{out / 'mlruns'}", out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert run.data.params == params_of(saved) and run.info.status == "FINISHED" and run.info.run_name == "run"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["val_accuracy"]) for r in epochs]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "metrics.jsonl", "data_report.json", "model"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/model.json", "model/model.safetensors"}

    # Resuming the finished run for one more epoch continues the same MLflow run.
    imgclf.train(resume=out, epochs=1)
    client, again = mlflow_run(f"file:{out / 'mlruns'}", out)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2, 3]


@pytest.mark.slow
def test_chosen_places_and_a_failed_run(shapes, tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, ctx, record):
            raise RuntimeError("boom")

    store, board = tmp_path / "shared-mlruns", tmp_path / "boards" / "a"
    uri = f"file:{store}"
    with pytest.raises(RuntimeError, match="boom"):
        imgclf.train(shapes, out=tmp_path / "a", model="lenet5", img_size=16, epochs=1, batch_size=16, log="mlflow,tensorboard",
                     tracking_uri=uri, log_dir=str(board), callbacks=[Boom()])  # fmt: skip
    assert list(board.glob("events.out.tfevents.*")) and not (tmp_path / "a" / "tensorboard").exists()
    _, failed = mlflow_run(uri, tmp_path / "a")
    assert failed.info.status == "FAILED" and not (tmp_path / "a" / "mlruns").exists()
    cfg = TrainConfig.from_yaml(tmp_path / "a" / "config.yaml")
    assert cfg.loggers() == ["mlflow", "tensorboard"] and cfg.tracking_uri == uri
