"""The run directory: the unit of exchange between train, evaluate, predict, export and serve.

    runs/<name>/
      config.yaml  data_report.json  splits.csv  metrics.jsonl
      model/       model.safetensors + model.json (the deployable bundle)
      checkpoints/ eval/ export/

Everything here is plain files; this module only knows paths and how to write them safely.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import UserError


@dataclass(frozen=True)
class Run:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_report(self) -> Path:
        return self.root / "data_report.json"

    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def read_config(self) -> dict:
        if not self.config.exists():
            return {}
        return yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]


def open_run(path: str | os.PathLike) -> Run:
    """A run directory that holds a trained model, or a UserError saying what is missing."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"run directory {path} does not exist")
    if not root.is_dir():
        raise UserError(f"{path} is not a run directory (expected a folder made by `imgclf train`)")
    run = Run(root)
    if not (run.model_dir / "model.json").exists():
        raise UserError(
            f"{path} holds no trained model (no model/model.json); "
            "it may be unfinished: train it with `imgclf train ... --out {path}`"
        )
    return run


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: Path, obj) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_csv(path: Path, rows) -> None:
    """Rows (the first being the header) as a CSV file, written atomically."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    atomic_write_text(path, buf.getvalue())


def append_jsonl(path: Path, obj) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj) + "\n")
