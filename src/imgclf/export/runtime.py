"""onnxruntime sessions for exported models: the ONNX backend of :mod:`imgclf.predict`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .graph import INPUT_NAME
from .metadata import parse_properties


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxModel:
    """An exported ``.onnx`` file in an onnxruntime CPU session, with its imgclf metadata."""

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
            raise UserError(f"{path} is not a model onnxruntime can load ({str(exc).splitlines()[0]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.meta, self.export_info = parse_properties(props, str(path))
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise UserError(f"{path} does not take imgclf's '{INPUT_NAME}' input")
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Logits (float32) for a uint8 NHWC batch."""
        x = np.ascontiguousarray(pixels, dtype=np.uint8)
        return self.session.run([self.output_name], {INPUT_NAME: x})[0].astype(np.float32, copy=False)
