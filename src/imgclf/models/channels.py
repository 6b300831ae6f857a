"""Pretrained RGB weights for a model with another number of input channels (a grayscale model).

Only the first convolution depends on the channel count. timm's ``adapt_input_conv`` converts its
weights: for one channel it sums them over R, G and B, so a grey image x gives what the RGB model
gives for the image (x, x, x) (up to the per-channel normalisation, whose statistics differ by a
few percent); for other counts it repeats and rescales them. Everything else loads unchanged.
"""

from __future__ import annotations

import torch


def adapt_input_channels(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the first convolution's weight adapted to ``own`` (the model's state dict)
    when the two differ only in input channels; everything else as it was."""
    from timm.models import adapt_input_conv

    first = next((k for k, v in own.items() if v.ndim == 4), None)
    weight = state.get(first) if first else None
    target = own.get(first) if first else None
    if weight is None or target is None or weight.ndim != 4 or weight.shape == target.shape:
        return state
    if weight.shape[0] != target.shape[0] or weight.shape[2:] != target.shape[2:]:
        return state  # not the same layer with other inputs: load_pretrained reports it as skipped
    try:
        adapted = adapt_input_conv(target.shape[1], weight, base_chans=weight.shape[1])
    except (NotImplementedError, ValueError, AssertionError):
        return state
    return {**state, first: adapted}
