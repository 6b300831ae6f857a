"""The frozen layers of a cached-features run, executed by onnxruntime on a CPU.

Caching runs the frozen part of the network once per image and view: on a CPU that forward pass
is most of a transfer run's time. onnxruntime runs EfficientNet-Lite0 (depthwise convolutions)
about twice as fast as PyTorch's bf16 channels-last path on the 2-core development machine
(measured at 224 px, batch 32: 23.2 against 10.8 img/s on the loaded machine; see BENCHMARKS.md,
TrashNet), so when onnxruntime is installed and the device is the CPU the frozen part is exported
once (a few seconds: TorchScript exporter, the module is fixed) and run there. Its outputs are
checked against PyTorch's fp32 outputs on the first batch; any export or runtime failure, or a
mismatch, falls back to PyTorch, with a log line.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings

import numpy as np
import torch
from torch import nn

from ..inference.normalize import normalize
from ..inference.precision import autocast
from ..models.feature_cut import lower_and_pooled
from ..progress import log


class FrozenPart(nn.Module):
    """uint8 NHWC pixels -> (features at the cut, pooled features) of ``model``, which is in eval mode."""

    def __init__(self, model: nn.Module, start: int | None, mean, std):
        super().__init__()
        self.model, self.start, self.mean, self.std = model, start, tuple(mean), tuple(std)
        # In eval mode like the model: the ONNX exporter restores the wrapper's mode recursively
        # after tracing, and a wrapper left in train mode would put the model's batch norms in
        # train mode (found: every later forward pass then rewrote their running statistics).
        self.eval()

    def forward(self, pixels: torch.Tensor):
        cut, pooled = lower_and_pooled(self.model, normalize(pixels, self.mean, self.std), self.start)
        return (pooled,) if cut is None else (cut, pooled)


class OnnxFrozen:
    """:class:`FrozenPart` exported to ONNX and run by onnxruntime with PyTorch's thread count."""

    def __init__(self, part: FrozenPart, example: torch.Tensor):
        import onnxruntime as ort

        buffer = io.BytesIO()
        names = ["pooled"] if part.start is None else ["cut", "pooled"]
        # The exporter prints progress and tracer warnings meant for its own developers.
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(part, (example,), buffer, input_names=["pixels"], output_names=names,
                              dynamic_axes={"pixels": {0: "n"}, **{k: {0: "n"} for k in names}}, dynamo=False)  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return _pair([torch.from_numpy(a) for a in self.session.run(None, {"pixels": np.ascontiguousarray(pixels.numpy())})])


def _pair(outputs) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(features at the cut or None, pooled features) from FrozenPart's one or two outputs."""
    return (None, outputs[0]) if len(outputs) == 1 else (outputs[0], outputs[1])


def frozen_runner(model: nn.Module, start: int | None, preprocess, device: torch.device, precision: str, first: torch.Tensor):
    """A callable: uint8 NHWC batch -> (features at the cut or None, pooled features), computed by
    onnxruntime where it is available and agrees with PyTorch (fp32) on the batch ``first``, else
    by PyTorch under ``precision``. ``model`` must be in eval mode."""
    part = FrozenPart(model, start, preprocess.mean, preprocess.std)

    def in_torch(pixels: torch.Tensor):
        with torch.no_grad(), autocast(device, precision):
            return _pair(part(pixels.to(device)))

    if device.type != "cpu" or os.environ.get("IMGCLF_FROZEN_ONNX", "1") == "0":
        return in_torch
    try:
        t0 = time.perf_counter()
        onnx = OnnxFrozen(part, first[:2])
        with torch.no_grad():
            expected = [t for t in _pair(part(first)) if t is not None]
        got = [t for t in onnx(first) if t is not None]
        for e, g in zip(expected, got):
            scale = float(e.abs().max()) or 1.0
            if g.shape != e.shape or not torch.allclose(g, e, atol=1e-3 * scale, rtol=1e-3):
                raise ValueError("its outputs differ from PyTorch's")
        log(f"features: the frozen layers run in onnxruntime (exported and checked in {time.perf_counter() - t0:.1f}s)")
        return onnx
    except Exception as exc:  # noqa: BLE001 - any export or runtime problem: PyTorch computes the same thing
        log(f"features: the frozen layers run in PyTorch (onnxruntime: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return in_torch
