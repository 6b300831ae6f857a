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


class LeNet5(nn.Module):
    """LeCun et al. (1998), with ReLU and max-pooling as usually taught today; the 32x32 input of
    the original is kept by adaptive pooling before the classifier, so any size works."""

    def __init__(self, num_classes: int, in_chans: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 25, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.fc = nn.Linear(84, num_classes)

    def forward(self, x):
        return self.fc(self.classifier(self.features(x)))


class AlexNetSmall(nn.Module):
    """AlexNet's shape (five convolutions, three of them stacked, then two wide dropout layers)
    scaled for small images: 3x3 kernels and stride 1 instead of an 11x11 stride-4 stem."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(256 * 4, 1024), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate), nn.Linear(1024, 1024), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.fc(self.classifier(self.features(x)))


class _FrozenScaleBN(nn.BatchNorm2d):
    """Batch norm with its scale fixed at 1 (only the shift is learned): with GELU after it and
    the net's output scaled down, a learnable scale only adds noise (airbench's finding)."""

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class _DiracConv(nn.Conv2d):
    """3x3 'same' convolution initialised as identity on its first input channels plus noise:
    the block starts close to passing its input through, which trains faster from scratch."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, kernel_size=3, padding="same", bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight[: min(cin, cout)])


class _FastBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.norm1 = _DiracConv(cin, cout), _FrozenScaleBN(cout)
        self.conv2, self.norm2 = _DiracConv(cout, cout), _FrozenScaleBN(cout)
        self.pool, self.act = nn.MaxPool2d(2), nn.GELU()

    def forward(self, x):
        # Pooling before the norm halves the norm's work at no loss of accuracy.
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    """A speed-to-accuracy net for small images, after Keller Jordan's airbench94 (2024).

    A frozen 2x2 patch-whitening stem (its weights computed from training images by
    :meth:`data_init`), three conv blocks (widths 64/256/256 by default), global max-pooling and
    a bias-free linear head scaled by 1/9. On CIFAR-10 the airbench94 recipe reaches 94% in
    about 10 epochs; see ``train/presets.py`` for the recipe and BENCHMARKS.md for our numbers.
    """

    whiten_bias_epochs = 3  # the stem's bias trains this many epochs, then freezes (airbench: +0.1%)

    def __init__(self, num_classes: int, in_chans: int = 3, widths=(64, 256, 256), patch: int = 2):
        super().__init__()
        stem_width = 2 * in_chans * patch * patch
        self.stem = nn.Conv2d(in_chans, stem_width, kernel_size=patch, padding=0, bias=True)
        self.stem.weight.requires_grad_(False)
        blocks, cin = [], stem_width
        for w in widths:
            blocks.append(_FastBlock(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(cin, num_classes, bias=False)
        self.scale = 1 / 9  # a small output scale behaves like a low-temperature start for the head

    def forward(self, x):
        x = self.blocks(self.act(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1)) * self.scale

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``x`` (normalised NCHW training images).

        Each eigenvector of the patch covariance, scaled by 1/sqrt(eigenvalue), becomes a filter,
        with its negative beside it so the GELU after the stem loses no information.
        """
        c, (h, w) = x.shape[1], self.stem.kernel_size
        patches = x.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps).view(-1, 1)).reshape(-1, c, h, w)
        self.stem.weight.copy_(torch.cat([filters, -filters]).to(self.stem.weight))

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each epoch (0-based)."""
        self.stem.bias.requires_grad_(epoch < self.whiten_bias_epochs)


# name -> (builder(num_classes, in_chans, **kw), default image size, one-line description)
COMPACT_MODELS: dict[str, tuple[Callable[..., nn.Module], int, str]] = {
    "simple_cnn": (SimpleCNN, 32, "3-block conv net (32/64/128), any input size; the quick default"),
    "lenet5": (LeNet5, 32, "LeNet-5 (1998): two 5x5 conv layers and three dense layers; digits-sized inputs"),
    "alexnet_small": (AlexNetSmall, 32, "AlexNet's five-conv layout with 3x3 kernels, for small images"),
    "fast_cnn": (FastCNN, 32, "airbench94-style net (whitened stem, 64/256/256): the fast-small preset's model"),
    "fast_cnn_wide": (
        lambda num_classes, **kw: FastCNN(num_classes, widths=(128, 384, 384), **kw),
        32,
        "airbench95-style widths (128/384/384): about 2.6x the work of fast_cnn for more accuracy",
    ),
}
