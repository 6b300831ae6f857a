"""From a precision name to what a forward pass runs in: the one mapping, used by training,
validation, evaluation, prediction and the benchmarks.

``fp32`` runs without autocast; ``bf16`` and ``fp16`` run under ``torch.autocast`` with that
dtype. A request is honoured or refused, never silently replaced by fp32: where autocast cannot
run a dtype on a device, PyTorch only warns and computes in fp32, so :func:`resolve_precision`
checks that it really does before a model runs.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext

import torch

from ..device import pick_precision
from ..errors import UserError
from .names import PRECISIONS

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The context a forward pass in ``precision`` runs under on ``device``."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}")
    return nullcontext()


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision a forward pass on ``device`` runs in for ``requested`` (auto picks bf16 where
    the hardware runs it natively, as training does); a UserError when it cannot be honoured."""
    if requested not in PRECISIONS:
        raise UserError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    precision, _ = pick_precision(requested, device)
    if precision in AUTOCAST_DTYPES and not autocast_runs(device.type, precision):
        raise UserError(f"{precision} is not available on this {device.type} (PyTorch would compute in fp32); use --precision fp32")
    return precision


@functools.cache
def autocast_runs(device_type: str, precision: str) -> bool:
    """Whether autocast on ``device_type`` really computes a matrix product in ``precision``."""
    import warnings

    dtype = AUTOCAST_DTYPES[precision]
    try:
        a = torch.ones(2, 2, device=device_type)
        with warnings.catch_warnings(), torch.autocast(device_type=device_type, dtype=dtype):
            warnings.simplefilter("ignore")  # "autocast ... not supported, disabling": the case checked here
            return (a @ a).dtype == dtype
    except (RuntimeError, ValueError):
        return False
