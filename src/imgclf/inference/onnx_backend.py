"""An exported ``.onnx`` file (fp32 or int8) as a backend, run by onnxruntime on the CPU.

The exported graph takes uint8 NHWC pixels and returns logits (normalisation is inside it), so it
is a :class:`~.backends.Backend` as it is. The file carries its ``model.json`` and how it was
exported in its metadata properties (written by :mod:`imgclf.export.metadata`, read here), so a
lone file is enough to predict. onnxruntime is imported only when a file is opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .bundle import ModelMeta

# The contract between the exporter and this backend: the graph's input and output names and the
# metadata keys that hold model.json and the export's own record.
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
META_KEY = "imgclf.model_json"
EXPORT_KEY = "imgclf.export"


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxBackend:
    """An exported file in an onnxruntime CPU session: ``meta`` is the model.json inside it (checked),
    ``export_info`` how it was exported (``quantized``, ``weights_sha256``, ...)."""

    device = torch.device("cpu")

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        # One intra-op thread per available core and no inter-op parallelism: a classifier graph is
        # a chain, and more threads than cores only adds contention on a shared machine.
        opts.intra_op_num_threads = threads or available_cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: ORT warns about things imgclf handles
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise UserError(f"{path} is not a model onnxruntime can load ({str(exc).splitlines()[0][:200]})") from None
        self.meta, self.export_info = parse_properties(self.session.get_modelmeta().custom_metadata_map, str(path))
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise UserError(f"{path} does not take imgclf's '{INPUT_NAME}' input")
        width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        if isinstance(width, int) and width != self.meta.num_classes:
            raise UserError(f"{path} has {width} outputs but its metadata lists {self.meta.num_classes} classes; export it again")
        self.output_name = outputs[0].name
        self.quantized = bool(self.export_info.get("quantized"))
        self.name = "onnx-int8" if self.quantized else "onnx"
        self.precision = "int8" if self.quantized else "fp32"

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Logits (float32) for a uint8 NHWC batch."""
        x = np.ascontiguousarray(pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels, dtype=np.uint8)
        return self.session.run([self.output_name], {INPUT_NAME: x})[0].astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"OnnxBackend({self.path.name}, {self.precision})"


def parse_properties(props: dict[str, str], where: str) -> tuple[ModelMeta, dict]:
    """(checked model.json, export info) from an exported file's metadata properties."""
    try:
        raw = json.loads(props[META_KEY])
        info = json.loads(props.get(EXPORT_KEY, "{}"))
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise UserError(
            f"{where} was not exported by imgclf (no readable {META_KEY} metadata); export it with `imgclf export RUN`"
        ) from None
    return ModelMeta.from_dict(raw, where=f"the model.json inside {where}"), info if isinstance(info, dict) else {}
