"""Run a model over batches of uint8 pixels: the one forward path of training-time validation,
evaluation and prediction."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ..data.preprocess import normalize


@torch.inference_mode()
def logits_for_batches(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Concatenated float32 logits for uint8 NHWC ``batches``."""
    model.eval()
    out = []
    for x in batches:
        x = normalize(x.to(device, non_blocking=True), mean, std)
        if autocast_dtype is not None:
            with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                y = model(x)
        else:
            y = model(x)
        out.append(y.float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
