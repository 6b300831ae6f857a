"""What an exported file says about itself, so the file alone is enough to predict.

The whole ``model.json`` travels in the file (classes, preprocessing, calibration temperature and
whatever evaluation has added, such as an "unsure" threshold), plus a digest of the weights it was
exported from: a run whose weights changed since the export is then detected, never served stale.
A few flat keys repeat the essentials for tools that do not know imgclf. The reading side (and
the key names) is :mod:`imgclf.inference.onnx_backend`.
"""

from __future__ import annotations

import json

from ..inference.bundle import ModelMeta
from ..inference.onnx_backend import EXPORT_KEY, META_KEY

INPUT_DESCRIPTION = (
    "uint8 pixels, NHWC, shape (batch, img_size, img_size, channels): RGB (3 channels) or grey (1), the image "
    "fitted to a square as resize says and resized to img_size (interpolation as given); normalisation happens inside the graph"
)


def export_properties(meta: ModelMeta, export_info: dict) -> dict[str, str]:
    """String key/value pairs for ONNX ``metadata_props`` (or TorchScript extra files)."""
    pre = meta.preprocess
    return {
        META_KEY: json.dumps(meta.to_dict()),
        EXPORT_KEY: json.dumps(export_info),
        "classes": json.dumps(list(meta.classes)),
        "img_size": str(pre.img_size),
        "mean": json.dumps(list(pre.mean)),
        "std": json.dumps(list(pre.std)),
        "interpolation": pre.interpolation,
        "resize": pre.resize,
        "temperature": repr(float(meta.temperature)),
        "tta": meta.tta,
        "input": INPUT_DESCRIPTION,
        "output": "logits (batch, num_classes); probabilities = softmax(logits / temperature)",
    }
