"""Run a backend over batches of uint8 pixels: the one forward path of training-time validation,
evaluation, prediction, the export's parity check and ``bench infer``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .backends import Backend, TorchBackend
from .names import TTA_MODES  # noqa: F401  (re-exported)
from .tta import tta_logits as _tta_logits


def backend_logits(backend: Backend, batches: Iterable[np.ndarray | torch.Tensor], tta: str = "none") -> np.ndarray:
    """Concatenated float32 logits of ``backend`` for uint8 NHWC ``batches``, with test-time augmentation ``tta``."""
    out = [np.asarray(_tta_logits(backend, x, tta), dtype=np.float32) for x in batches]
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)


def logits_for_batches(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    tta: str = "none",
    precision: str | None = None,
) -> np.ndarray:
    """Concatenated float32 logits of a PyTorch ``model`` for uint8 NHWC ``batches`` (validation
    during training); the same path as a :class:`~.backends.TorchBackend` predicting.

    ``precision`` (fp32, bf16, fp16) or, equivalently, ``autocast_dtype`` (None for fp32).
    """
    if precision is None:
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(autocast_dtype, "fp32")
    backend = TorchBackend(model, mean, std, device=device, precision=precision)
    return backend_logits(backend, batches, tta)


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Logits of ``model`` for normalised NCHW ``x``, averaged over the views of :mod:`.tta` (the
    same definition the backends use, applied to the NCHW axes)."""
    return _tta_logits(model, x, tta, height_axis=2)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (the row maximum is subtracted first, so large logits do not overflow)."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
