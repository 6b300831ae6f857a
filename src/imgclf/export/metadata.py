"""What an exported file says about itself, so the file alone is enough to predict.

The whole ``model.json`` travels in the file (classes, preprocessing, calibration temperature and
whatever evaluation has added, such as an "unsure" threshold), plus a digest of the weights it was
exported from: a run whose weights changed since the export is then detected, never served stale.
A few flat keys repeat the essentials for tools that do not know imgclf.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import UserError

META_KEY = "imgclf.model_json"
EXPORT_KEY = "imgclf.export"
INPUT_DESCRIPTION = (
    "uint8 RGB pixels, NHWC, shape (batch, img_size, img_size, 3): the image centre-cropped to a square "
    "and resized to img_size (interpolation as given); normalisation happens inside the graph"
)


def weights_digest(bundle_dir: Path) -> str:
    """sha256 of ``model.safetensors``: identifies the exact weights an export came from."""
    h = hashlib.sha256()
    with open(bundle_dir / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_properties(meta: dict, export_info: dict) -> dict[str, str]:
    """String key/value pairs for ONNX ``metadata_props`` (or TorchScript extra files)."""
    pre = meta["preprocess"]
    return {
        META_KEY: json.dumps(meta),
        EXPORT_KEY: json.dumps(export_info),
        "classes": json.dumps(list(meta["classes"])),
        "img_size": str(pre["img_size"]),
        "mean": json.dumps(list(pre.get("mean", []))),
        "std": json.dumps(list(pre.get("std", []))),
        "interpolation": str(pre.get("interpolation", "bilinear")),
        "resize": str(pre.get("resize", "center-crop")),
        "temperature": repr(float(meta.get("temperature", 1.0))),
        "tta": str(meta.get("tta", "none")),
        "input": INPUT_DESCRIPTION,
        "output": "logits (batch, num_classes); probabilities = softmax(logits / temperature)",
    }


def parse_properties(props: dict[str, str], where: str) -> tuple[dict, dict]:
    """(model.json dict, export info) from an exported file's properties."""
    try:
        meta = json.loads(props[META_KEY])
        info = json.loads(props.get(EXPORT_KEY, "{}"))
    except (KeyError, json.JSONDecodeError):
        raise UserError(
            f"{where} was not exported by imgclf (no {META_KEY} metadata); export it with `imgclf export RUN`"
        ) from None
    return meta, info
