"""Experiment tracking (``--log tensorboard``, ``--log mlflow``): training callbacks that record a
run's parameters (the resolved configuration), its per-epoch metrics (the metrics.jsonl lines,
under the same names) and, when training ends, its artefacts.

- TensorBoard: event files in ``--log-dir`` (default ``RUN/tensorboard``): every number of each
  epoch's record as a scalar at step = epoch, the configuration as text and as hyper-parameters
  (the HParams tab), and the list of artefacts as text (TensorBoard stores no files).
- MLflow: a run in the experiment ``imgclf`` of ``--tracking-uri`` (default: a file store in the
  run directory, ``file:RUN/mlruns``), named after the run directory and tagged with its path,
  so a resumed run continues the same MLflow run. Artefacts: the model bundle (``model/``),
  config.yaml, metrics.jsonl, data_report.json and ``eval/`` when present.

TensorBoard and MLflow are imported only when a run asks for them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..progress import log
from .callbacks import Callback

if TYPE_CHECKING:
    from .config import TrainConfig
    from .context import TrainContext

EXPERIMENT = "imgclf"
RUN_DIR_TAG = "imgclf.run_dir"
RUN_FILES = ("config.yaml", "metrics.jsonl", "data_report.json")  # logged at the artefacts' root


def loggers(cfg: TrainConfig) -> list[Callback]:
    """The tracking callbacks ``cfg.log`` asks for, in its order."""
    kinds = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}
    return [kinds[name]() for name in cfg.loggers()]


def params_of(config: dict) -> dict[str, str]:
    """The configuration as text values (YAML-like: null, true, 0.002), the form both trackers keep."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def epoch_metrics(record: dict) -> dict[str, float]:
    """The numbers of a metrics.jsonl line, but its epoch (the step they are logged at)."""
    return {k: float(v) for k, v in record.items() if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)}


def artefacts(run_root: Path) -> list[Path]:
    """What a finished run hands to a tracker: its model bundle, its record files and eval/."""
    found = [run_root / name for name in RUN_FILES if (run_root / name).is_file()]
    return found + [d for d in (run_root / "model", run_root / "eval") if d.is_dir()]


class TensorBoardLogger(Callback):
    """Scalars per epoch, the configuration as text and hyper-parameters, in TensorBoard event files."""

    def __init__(self):
        self.writer = None

    def on_train_start(self, ctx: TrainContext) -> None:
        from torch.utils.tensorboard import SummaryWriter

        cfg = ctx.config
        log_dir = Path(cfg.log_dir).expanduser() if cfg.log_dir else ctx.run.root / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(log_dir))
        # Four spaces make TensorBoard's markdown show the YAML as a code block, line for line.
        text = "\n".join(f"    {k}: {v}" for k, v in params_of(cfg.to_dict()).items())
        self.writer.add_text("config", text, global_step=ctx.state.epoch)
        log(f"tensorboard: logging to {log_dir} (view: tensorboard --logdir {log_dir})")

    def on_epoch_end(self, ctx: TrainContext, record: dict) -> None:
        for key, value in epoch_metrics(record).items():
            self.writer.add_scalar(key, value, global_step=record["epoch"])
        self.writer.flush()  # a crash keeps the epochs already logged

    def on_run_end(self, ctx: TrainContext, result) -> None:
        if self.writer is None:
            return
        if result is not None:
            final = {"hparam/final_train_loss": float(result.final_train_loss)}
            if result.best_val_accuracy is not None:
                final["hparam/best_val_accuracy"] = float(result.best_val_accuracy)
            # run_name ".": the hyper-parameters go to this run's folder, not a new timestamped one.
            self.writer.add_hparams(params_of(ctx.config.to_dict()), final, run_name=".", global_step=result.epochs)
            listing = "\n".join(f"    {p}" for p in artefacts(ctx.run.root))
            self.writer.add_text("artefacts", listing, global_step=result.epochs)
        self.writer.close()
        self.writer = None


class MLflowLogger(Callback):
    """Parameters, metrics per epoch and artefacts in an MLflow run (a resumed run continues it)."""

    def __init__(self):
        self.client, self.run_id = None, None

    def on_train_start(self, ctx: TrainContext) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        root = ctx.run.root.resolve()
        uri = tracking_uri(ctx.config.tracking_uri, root)
        self.client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment(self.client, uri)
        self.run_id = _existing_run(self.client, experiment_id, root)
        if self.run_id is None:
            tags = {RUN_DIR_TAG: str(root), "mlflow.runName": root.name, "mlflow.source.name": "imgclf train"}
            self.run_id = self.client.create_run(experiment_id, run_name=root.name, tags=tags).info.run_id
            params = [Param(k, v) for k, v in params_of(ctx.config.to_dict()).items()]
            self.client.log_batch(self.run_id, params=params)
        else:  # a resumed run: the same MLflow run, its parameters already logged (MLflow refuses to change them)
            self.client.update_run(self.run_id, status="RUNNING")
            self.client.log_batch(self.run_id, tags=[RunTag("imgclf.resumed", "true")])
        log(f"mlflow: run {self.run_id} in experiment {EXPERIMENT!r} at {uri}")

    def on_epoch_end(self, ctx: TrainContext, record: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, record["epoch"]) for k, v in epoch_metrics(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_run_end(self, ctx: TrainContext, result) -> None:
        if self.run_id is None:
            return
        if result is not None:
            for path in artefacts(ctx.run.root):
                if path.is_dir():
                    self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
                else:
                    self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, status="FINISHED" if result is not None else "FAILED")
        self.run_id = None


def tracking_uri(given: str | None, run_root: Path) -> str:
    """``given``, or the run's own file store; a file store is allowed explicitly (below)."""
    uri = given or f"file:{run_root / 'mlruns'}"
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 refuses file stores unless this is set ("maintenance mode"), recommending SQLite;
        # but creating a SQLite store runs its schema migrations: 8 s per new store, measured,
        # against 0.04 s for a file store, and the default store is new for every run.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def _experiment(client, uri: str) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artefacts beside the database, as `mlflow server` does (not in the working folder)
        location = (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def _existing_run(client, experiment_id: str, root: Path) -> str | None:
    quoted = str(root).replace("'", "\\'")
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{quoted}'", max_results=1)
    return runs[0].info.run_id if runs else None
