"""Device and precision choice: bf16 autocast where the hardware runs it natively, fp32 otherwise."""

from __future__ import annotations

import functools
import platform

import torch

from .errors import UserError


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    """The CPU's marketing name (for benchmark reports), or the best guess platform gives."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """AMX-BF16 or AVX-512 BF16: oneDNN then runs bf16 convolutions and matmuls natively.

    Without them bf16 is emulated and slower than fp32, so auto must not pick it.
    """
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available")
        return torch.device("cuda")
    return torch.device("cpu")


def pick_precision(requested: str, device: torch.device, flags: frozenset[str] | None = None) -> tuple[str, str]:
    """Return (precision, why) for ``requested`` in auto | fp32 | bf16 | fp16."""
    if requested == "fp32":
        return "fp32", "requested"
    if requested == "fp16":
        if device.type == "cuda":
            return "fp16", "requested (with loss scaling)"
        return "fp16", "requested (with loss scaling); warning: fp16 on a CPU is slow, bf16 is the fast choice where supported"
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        why = "GPU supports bf16" if supported else "GPU lacks bf16"
    else:
        flags = cpu_flags() if flags is None else flags
        supported = cpu_has_fast_bf16(flags)
        names = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}
        have = [v for k, v in names.items() if k in flags]
        why = f"CPU has {' and '.join(have)}" if supported else "CPU lacks AMX and AVX-512 BF16 (bf16 would be emulated)"
    if requested == "bf16":
        return "bf16", "requested" + ("" if supported else f"; warning: {why}, expect it to be slow")
    return ("bf16" if supported else "fp32"), why

