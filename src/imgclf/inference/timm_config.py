"""A timm-style ``config.json`` beside a bundle's weights, so timm itself (and the Hugging Face hub
layout) can load a trained run: ``timm.create_model("local-dir:RUN/model", pretrained=True)``.

timm's local-dir loader reads ``<dir>/config.json`` (architecture, num_classes, label_names,
pretrained_cfg) and the first of ``model.safetensors``, ``pytorch_model.bin``, ... in the same
folder; the bundle's ``model.safetensors`` is already in timm's names, since imgclf builds timm
architectures with timm. The file is written by timm's own ``save_config_for_hf`` (what timm's
``push_to_hf_hub`` writes), with the bundle's preprocessing as its data config, so mean, std,
input size, interpolation and crop are the ones imgclf serves. imgclf's compact nets are not timm
models (timm cannot build them): their bundles get no config.json.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ..data.preprocess import Preprocess

CONFIG_NAME = "config.json"
# imgclf's resize modes as timm's eval crop modes (timm.data.transforms_factory): "center" with
# crop_pct 1 resizes the shorter side and takes the centred square, as imgclf's crop does;
# "border" fits the longer side and pads with the mean colour, as imgclf's letterbox does.
_CROP_MODES = {"crop": "center", "center-crop": "center", "squash": "squash", "letterbox": "border"}


def timm_data_config(preprocess: Preprocess) -> dict:
    """The bundle's preprocessing in the keys of timm's data config (``resolve_data_config``)."""
    channels = getattr(preprocess, "channels", 3)
    return {
        "input_size": (channels, preprocess.img_size, preprocess.img_size),
        "interpolation": preprocess.interpolation,
        "mean": tuple(preprocess.mean),
        "std": tuple(preprocess.std),
        "crop_pct": 1.0,
        "crop_mode": _CROP_MODES.get(preprocess.resize, "center"),
    }


def write_timm_config(directory: Path, model: nn.Module, classes: list[str], preprocess: Preprocess) -> Path | None:
    """Write ``directory/config.json`` for a timm ``model`` (atomically); returns its path, or None
    for a model timm did not build (no ``pretrained_cfg``), for which an existing file is removed
    so that it cannot describe other weights."""
    path = Path(directory) / CONFIG_NAME
    if not isinstance(getattr(model, "pretrained_cfg", None), dict):
        path.unlink(missing_ok=True)  # inside the bundle: a previous epoch's, now stale
        return None
    from timm.models._hub import save_config_for_hf  # what push_to_hf_hub writes; not re-exported by timm.models

    model_config = {"num_classes": len(classes), "label_names": list(classes)}
    tmp = path.with_name(f".{CONFIG_NAME}.tmp{os.getpid()}")
    try:
        save_config_for_hf(model, str(tmp), model_config=model_config, data_config=timm_data_config(preprocess))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
