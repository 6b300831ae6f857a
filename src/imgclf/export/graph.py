"""The module every export traces: uint8 NHWC pixels in, logits out, normalisation inside.

Baking the normalisation in makes an exported file self-contained: a consumer decodes, centre-crops
and resizes (``Preprocess.load``, recorded in the file's metadata) and feeds the bytes as they are.
The arithmetic is the same as :func:`imgclf.data.preprocess.normalize` (subtract mean*255, multiply
by 1/(std*255)), so the graph computes what the PyTorch path computes, operation for operation.
Test-time augmentation is not baked in: it multiplies the cost of every call, so the Predictor
applies it (to uint8 views, identically for every backend) when the model asks for it.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


class PixelsToLogits(nn.Module):
    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("scale", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32)
        return self.model((x - self.shift) * self.scale)
