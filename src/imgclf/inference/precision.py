"""From a precision name to what a forward pass runs in: the one mapping, used by training,
validation, evaluation, prediction and the benchmarks.

``fp32`` runs without autocast; ``bf16`` and ``fp16`` run under ``torch.autocast`` with that
dtype. A request is honoured or refused, never silently replaced by fp32.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The context a forward pass in ``precision`` runs under on ``device``."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}")
    return nullcontext()
