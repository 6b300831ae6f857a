"""Compact CNNs for small images (digits, CIFAR-sized photos, thumbnails), registered by name.

timm's zoo targets 224-pixel ImageNet photos; at 32 pixels its stems downsample too early. These
nets keep resolution in their first layers and train in seconds to minutes on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SimpleCNN(nn.Module):
    """Three conv-BN-ReLU blocks with max-pooling, global average pooling and a linear head.

    The "simple CNN" of every tutorial, done properly (batch norm, no fixed input size).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, widths=(32, 64, 128), drop_rate: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            layers += _conv_bn(cin, w) + _conv_bn(w, w) + [nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes)  # named like timm's heads so head replacement finds it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


# name -> (builder(num_classes, in_chans, **kw), default image size, one-line description)
COMPACT_MODELS: dict[str, tuple[Callable[..., nn.Module], int, str]] = {
    "simple_cnn": (SimpleCNN, 32, "3-block conv net (32/64/128), any input size; the quick default"),
}
