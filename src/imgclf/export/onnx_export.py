"""PyTorch model -> ONNX file with a dynamic batch axis and imgclf's metadata inside."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import UserError
from ..inference.bundle import ModelMeta
from ..runs import atomic_write_bytes
from .graph import INPUT_NAME, OUTPUT_NAME, PixelsToLogits
from .metadata import export_properties


@contextlib.contextmanager
def quiet():
    """The exporters print progress lines, deprecation and tracer warnings meant for their own
    developers; imgclf reports the outcome (and the parity check) instead."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export_onnx(model: nn.Module, meta: ModelMeta, path: Path, *, opset: int | None = None, export_info: dict | None = None) -> dict:
    """Write ``path`` (weights embedded, one file) and return how it was exported.

    The torch.export-based exporter (``dynamo=True``) is tried first: it is the maintained one
    (the TorchScript-based exporter is deprecated since torch 2.9) and its graph optimiser folds
    batch norms and constants. Models it cannot trace fall back to the TorchScript exporter.
    """
    pre = meta.preprocess
    module = PixelsToLogits(model, pre.mean, pre.std).eval().cpu()
    # batch 2: a batch of 1 could be specialised; channels 3 (RGB) or 1 (a grayscale model)
    example = torch.zeros(2, *pre.shape, dtype=torch.uint8)
    info = dict(export_info or {})
    proto, errors = None, []
    for exporter in ("dynamo", "torchscript"):
        try:
            proto = _export_with(exporter, module, example, opset)
            info["exporter"] = exporter
            break
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the other one
            errors.append(f"{exporter}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if proto is None:
        raise UserError(f"{meta.architecture} could not be exported to ONNX ({'; '.join(errors)})")
    if errors:
        info["exporter_fallback_reason"] = errors[0]
    info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    info.setdefault("format", "onnx")
    set_properties(proto, export_properties(meta, info))
    atomic_write_bytes(path, proto.SerializeToString())
    return info


def set_properties(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.producer_name = "imgclf"


def _export_with(exporter: str, module: nn.Module, example: torch.Tensor, opset: int | None) -> onnx.ModelProto:
    with quiet(), torch.inference_mode(False), torch.no_grad():
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=65536)
            program = torch.onnx.export(
                module, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},), dynamo=True, opset_version=opset, verbose=False,
            )  # fmt: skip
            return program.model_proto
        buf = io.BytesIO()
        torch.onnx.export(
            module, (example,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False, opset_version=opset or 17,
        )  # fmt: skip
        return onnx.load_from_string(buf.getvalue())
