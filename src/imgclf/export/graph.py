"""The module every export traces: uint8 NHWC pixels in, logits out, normalisation inside.

Baking the normalisation in makes an exported file self-contained: a consumer decodes, centre-crops
and resizes (``Preprocess.load``, recorded in the file's metadata) and feeds the bytes as they are.
The normalisation is :func:`imgclf.inference.normalize.normalize` itself, traced, so the graph
computes what the PyTorch path computes, operation for operation. Test-time augmentation is not
baked in: it multiplies the cost of every call, so it is applied outside the graph, to uint8
views, identically for every backend (:mod:`imgclf.inference.tta`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..inference.normalize import normalize
from ..inference.onnx_backend import INPUT_NAME, OUTPUT_NAME

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "PixelsToLogits"]


class PixelsToLogits(nn.Module):
    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(normalize(pixels, self.mean, self.std))
