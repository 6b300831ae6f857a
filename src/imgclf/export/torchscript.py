"""PyTorch model -> TorchScript file (uint8 NHWC in, logits out), imgclf's metadata inside.

TorchScript's archive is read by ``torch.jit.load``, which rebuilds the graph from its own
serialised code and tensors; imgclf never loads it with ``torch.load``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from ..inference.bundle import ModelMeta
from ..runs import atomic_write_bytes
from .graph import PixelsToLogits
from .metadata import export_properties
from .onnx_export import quiet

EXTRA_FILE = "imgclf.json"


def export_torchscript(model: nn.Module, meta: ModelMeta, path: Path, *, export_info: dict | None = None) -> dict:
    pre = meta.preprocess
    module = PixelsToLogits(model, pre.mean, pre.std).eval().cpu()
    size = pre.img_size
    info = {**(export_info or {}), "format": "torchscript", "exporter": "torch.jit.trace"}
    with quiet(), torch.no_grad():  # silences tracer and deprecation warnings
        # Tracing, not scripting: timm's models are written for tracing (scripting rejects many).
        traced = torch.jit.trace(module, torch.zeros(2, size, size, pre.channels, dtype=torch.uint8))
        traced = torch.jit.freeze(traced)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={EXTRA_FILE: json.dumps(export_properties(meta, info))})
    atomic_write_bytes(path, buf.getvalue())
    return info


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """The traced module and its metadata properties."""
    extra = {EXTRA_FILE: ""}
    with quiet():  # torch.jit.load warns that TorchScript is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[EXTRA_FILE] or "{}")
