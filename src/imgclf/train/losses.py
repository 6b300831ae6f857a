"""Losses: cross-entropy (with label smoothing and class weights) and focal loss, both accepting
hard labels or the soft targets of mixup/cutmix."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by (1 - p_true)^gamma, so easy,
    well-classified examples (mostly of the majority classes) weigh less."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=1)
        if target.ndim == 1:
            target = F.one_hot(target, logits.shape[1]).to(logp.dtype)
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / logits.shape[1]
        focal = (1 - logp.exp()).pow(self.gamma)
        per_class = -target * focal * logp
        if self.weight is not None:
            per_class = per_class * self.weight
        return per_class.sum(1).mean()


def make_criterion(kind: str, *, label_smoothing: float = 0.0, class_weight: torch.Tensor | None = None, gamma: float = 2.0) -> nn.Module:
    if kind == "focal":
        return FocalLoss(gamma, weight=class_weight, label_smoothing=label_smoothing)
    return nn.CrossEntropyLoss(weight=class_weight, label_smoothing=label_smoothing)


def balanced_class_weights(labels, num_classes: int) -> torch.Tensor:
    """n / (k x count_c), scikit-learn's "balanced" weights: each class contributes equally."""
    counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).clamp(min=1).float()
    return counts.sum() / (num_classes * counts)
