"""uint8 NHWC pixels -> normalised float NCHW: the one definition of normalisation.

The exported ONNX graph calls this same function inside its traced module, so the file computes
what the PyTorch path computes, operation for operation.
"""

from __future__ import annotations

import torch


def normalize(
    batch: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 NHWC -> normalised NCHW of ``dtype``, in channels_last memory order (no copy to NCHW).

    One conversion copy, then in-place arithmetic: this runs on every training batch.
    """
    x = batch.permute(0, 3, 1, 2).to(torch.float32)
    channels = x.shape[1]
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, channels, 1, 1) * 255.0
    inv = 1.0 / (torch.tensor(std, dtype=torch.float32, device=x.device).view(1, channels, 1, 1) * 255.0)
    x.sub_(m).mul_(inv)
    return x if dtype == torch.float32 else x.to(dtype)
