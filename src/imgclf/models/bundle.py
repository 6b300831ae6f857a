"""The deployable model bundle: ``model.safetensors`` + ``model.json``.

``model.json`` says everything needed to rebuild and feed the model (architecture, classes,
preprocessing, calibration temperature); the weights are safetensors, never pickle.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from .._version import __version__
from ..errors import UserError
from ..runs import write_json
from .factory import create_model

FORMAT = "imgclf-model"
FORMAT_VERSION = 1


def save_bundle(
    model: nn.Module,
    directory: Path,
    *,
    architecture: str,
    classes: list[str],
    preprocess: dict,
    model_kwargs: dict | None = None,
    extra: dict | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.safetensors"
    tmp = weights.with_name(f".model.safetensors.tmp{os.getpid()}")
    save_model(model, str(tmp))  # handles tied weights, unlike save_file
    os.replace(tmp, weights)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "imgclf_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "architecture": architecture,
        "model_kwargs": model_kwargs or {},
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": preprocess,
        "temperature": 1.0,
        **(extra or {}),
    }
    write_json(directory / "model.json", meta)


def read_bundle_meta(directory: Path) -> dict:
    path = directory / "model.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{directory} holds no model.json") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}); the bundle is damaged") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not an imgclf model bundle")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"{path} was written by a newer imgclf ({meta.get('imgclf_version')}); upgrade imgclf to load it"
        )
    return meta


def update_bundle_meta(directory: Path, updates: dict) -> dict:
    """Merge ``updates`` into ``model.json`` (atomically) and return the new metadata.

    Evaluation stores what it learns about the model here (calibration temperature, the
    confidence threshold for "unsure"), so predict, export and serve all pick it up.
    """
    meta = read_bundle_meta(directory)
    meta.update(updates)
    write_json(directory / "model.json", meta)
    return meta


def load_bundle(directory: Path) -> tuple[nn.Module, dict]:
    """Rebuild the model from ``model.json`` and load its weights (strictly: every tensor must match)."""
    meta = read_bundle_meta(directory)
    model = create_model(
        meta["architecture"],
        meta["num_classes"],
        img_size=meta["preprocess"]["img_size"],
        **meta.get("model_kwargs", {}),
    )
    missing, unexpected = load_model(model, str(directory / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise UserError(
            f"the weights in {directory} do not fit {meta['architecture']} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors); the bundle is damaged"
        )
    model.eval()
    return model, meta
