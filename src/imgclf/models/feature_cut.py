"""A network cut in two: the frozen layers below a point, computed once per image, and the layers
above it, trained on those cached outputs.

Two cuts exist:

- the head's input ("pooled" features), for any model with an identifiable classifier head
  (:func:`.pretrained.head_module`): read with a forward pre-hook on the head, so it is exactly
  what the head sees, whatever the architecture does before it;
- a point inside the backbone, for networks whose forward pass is a plain sequence of layers that
  imgclf knows (timm's EfficientNet family, which the ``--pretrained imagenet`` weights are):
  the layers from the cut up, then the model's own ``forward_head``.

:class:`UpperModel` runs the part above the cut for a batch of cached features; it holds the
model itself, so its parameters are the model's and a moving average's copy gets its own view.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .pretrained import head_module


def layer_sequence(model: nn.Module) -> tuple[list[nn.Module], Callable[[torch.Tensor], torch.Tensor]] | None:
    """``model``'s forward pass as (layers in order, head) where ``model(x)`` equals
    ``head(layers[-1](...layers[0](x)))``, or None for an architecture this does not know."""
    from timm.models.efficientnet import EfficientNet

    if isinstance(model, EfficientNet) and not model.grad_checkpointing:
        blocks = [block for stage in model.blocks for block in stage]  # per block: the finest cut
        return [model.conv_stem, model.bn1, *blocks, model.conv_head, model.bn2], model.forward_head
    return None


def first_trainable_layer(model: nn.Module, trainable: set[int]) -> int | None:
    """The index in :func:`layer_sequence` of the lowest layer holding a parameter in
    ``trainable`` (parameter ids): everything below it can be computed once. None when the
    sequence is unknown or no backbone layer trains."""
    found = layer_sequence(model)
    if found is None:
        return None
    for i, layer in enumerate(found[0]):
        if any(id(p) in trainable for p in layer.parameters()):
            return i
    return None


def head_dropout(model: nn.Module) -> float:
    """The dropout a timm model applies before its classifier (its ``drop_rate``; 0 for others)."""
    rate = getattr(model, "drop_rate", 0.0)
    return float(rate) if isinstance(rate, (int, float)) else 0.0


class UpperModel(nn.Module):
    """``model`` above the cut at layer ``start``: 4-D features at the cut -> logits, and pooled
    2-D features (the head's input) -> logits through the head alone (with the model's own
    dropout before it while training)."""

    def __init__(self, model: nn.Module, start: int | None):
        super().__init__()
        self.model, self.start = model, start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return head_module(self.model)(F.dropout(x, head_dropout(self.model), self.training))
        if self.start is None:
            raise ValueError("this model has no cut inside its backbone; only pooled features can be used")
        layers, head = layer_sequence(self.model)
        for layer in layers[self.start :]:
            x = layer(x)
        return head(x)


class HeadInput:
    """Captures what the head of ``model`` receives during a forward pass (``with HeadInput(m) as h:
    m(x); h.value``)."""

    def __init__(self, model: nn.Module):
        self.head, self.value, self._hook = head_module(model), None, None

    def __enter__(self) -> HeadInput:
        self._hook = self.head.register_forward_pre_hook(self._keep)
        return self

    def _keep(self, _module, args) -> None:
        self.value = args[0]

    def __exit__(self, *exc) -> None:
        self._hook.remove()


@torch.no_grad()
def lower_and_pooled(model: nn.Module, x: torch.Tensor, start: int | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One frozen forward pass of a normalised batch: (features at the cut ``start`` or None,
    pooled features). ``model`` must be in eval mode."""
    with HeadInput(model) as head_input:
        if start is None:
            model(x)
            return None, head_input.value
        layers, head = layer_sequence(model)
        for layer in layers[:start]:
            x = layer(x)
        cut = x
        for layer in layers[start:]:
            x = layer(x)
        head(x)
    return cut, head_input.value
