"""Backends: the things that turn a batch of uint8 NHWC pixels into float32 logits.

PyTorch (:class:`TorchBackend`) and onnxruntime (:class:`~.onnx_backend.OnnxBackend`, fp32 or
int8) are siblings behind one small interface, :class:`Backend`. Everything above them (the
Predictor, evaluation, the export's parity check, ``bench infer``) sees only that interface, and
test-time augmentation (:mod:`.tta`) wraps any of them the same way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..device import pick_device
from .normalize import normalize
from .precision import autocast, resolve_precision


@runtime_checkable
class Backend(Protocol):
    """uint8 NHWC pixels (numpy or torch, already fitted by the bundle's Preprocess) -> float32 logits."""

    name: str  # "torch", "onnx" or "onnx-int8"
    precision: str  # what it computes in: fp32, bf16, fp16 or int8
    device: torch.device

    def __call__(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray: ...


class TorchBackend:
    """A PyTorch model as a backend: normalise on the device, run the model under the precision's
    autocast, return float32 logits on the CPU.

    ``precision`` "auto" picks bf16 where the hardware runs it natively (as training does, several
    times faster on such CPUs) and fp32 elsewhere; an explicit bf16 or fp16 runs in that precision
    or is refused (:func:`.precision.resolve_precision`).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
    ):
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.mean, self.std = tuple(mean), tuple(std)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(pixels).to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            y = self.model(normalize(x, self.mean, self.std))
        return y.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchBackend({type(self.model).__name__}, {self.precision} on {self.device})"
