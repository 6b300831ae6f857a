"""Batch norm over the global batch of a data-parallel run, on any device.

Under DDP each process sees only its share of the global batch. Plain batch norm then normalises
by that share's statistics (a different training function from one process with the same global
batch) and each replica's running statistics drift apart. ``torch.nn.SyncBatchNorm`` fixes both,
but only for GPU tensors: torch 2.14 raises "SyncBatchNorm expected input tensor to be on GPU"
for CPU input (nn/modules/batchnorm.py). :class:`GlobalBatchNorm` does the same on the CPU, with
two autograd-aware all-reduces per layer (one forward, one backward); tests/train/test_distributed.py
checks that 2 processes then train like one process with the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _SumOverRanks(torch.autograd.Function):
    """An all-reduce (sum) that autograd sees through: the gradient of a sum over ranks is the sum
    of every rank's gradient. (torch.distributed.nn.functional.all_reduce does this too but is
    deprecated in torch 2.14, and the functional collectives that replace it are not differentiable.)"""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        with _without_backward_context():  # a recomputed forward (activation checkpointing) runs inside a backward
            dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        with _without_backward_context():
            dist.all_reduce(grad, group=ctx.group)
        return grad, None


@contextmanager
def _without_backward_context() -> Iterator[None]:
    """Hide the Python object that torch's backward keeps in thread-local state while a collective
    is issued from a backward pass.

    torch.autograd stashes a ``contextvars`` context in C++ thread-local state for the whole
    backward (autograd/graph.py, ``_stash_obj_in_tls("context", ...)``), and gloo copies that state
    into every collective's work object. The work is freed by whichever thread lets go last; when
    that is a gloo thread while the interpreter is finishing, dropping the Python reference kills
    the process with SIGABRT ("terminate called without an active exception"; gdb on the core
    shows ~ThreadLocalState -> SafePyObject decref -> take_gil -> pthread_exit). That happened in
    about 1 of 25 two-process runs here, after all the work was done. An all-reduce needs no
    Python context, so it is issued without one. (DDP's own all-reduces are kept alive by its
    reducer and freed on the main thread.)"""
    c = torch._C
    if not (hasattr(c, "_is_key_in_tls") and c._is_key_in_tls("context")):
        yield
        return
    saved = c._get_obj_in_tls("context")
    c._remove_obj_from_tls("context")
    try:
        yield
    finally:
        c._stash_obj_in_tls("context", saved)


class GlobalBatchNorm(_BatchNorm):
    """Batch norm whose training-mode statistics are those of the whole global batch (all ranks of
    ``group``); in eval mode, or in a single process, exactly ``nn.BatchNorm``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, group=None):  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.group = group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size(self.group) > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        stats_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # bf16 / fp16 statistics in fp32
        local_var, local_mean = torch.var_mean(x.to(stats_dtype), dim=dims, correction=0)
        n = x.numel() // x.shape[1]
        # Sums about a shift every rank shares (the running mean, close to the batch mean once
        # warm), so that E[x^2] - E[x]^2 does not cancel catastrophically.
        shift = self.running_mean.detach().to(stats_dtype) if self.running_mean is not None else torch.zeros_like(local_mean)
        d = local_mean - shift
        count = torch.tensor([float(n)], dtype=stats_dtype, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([n * d, n * (local_var + d * d), count]), self.group)
        c = x.shape[1]
        total = sums[2 * c]
        mean_d = sums[:c] / total
        var = (sums[c : 2 * c] / total - mean_d * mean_d).clamp_min(0)
        mean = shift + mean_d
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        offset = -mean * scale + (self.bias if self.bias is not None else 0)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), total.item())
        y = torch.addcmul(offset.view(shape), x, scale.view(shape))  # one pass: x * scale + offset
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def _plain(module: nn.Module) -> bool:
    """A batch norm that only configures ``_BatchNorm`` (fast_cnn's frozen-scale norm), not one
    that adds behaviour in its own forward (timm's BatchNormAct2d: norm + activation)."""
    return isinstance(module, _BatchNorm) and type(module).forward is _BatchNorm.forward


def convert_global_batchnorm(module: nn.Module, group=None) -> tuple[nn.Module, int, int]:
    """Replace every plain batch norm inside ``module`` by a :class:`GlobalBatchNorm` sharing its
    parameters and buffers (an optimiser built on ``module`` stays valid); returns (module,
    layers converted, batch norms left per-process)."""
    converted = left = 0
    if _plain(module) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, group)
        new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new, 1, 0
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        left += 1
    for name, child in module.named_children():
        new, c, n = convert_global_batchnorm(child, group)
        converted, left = converted + c, left + n
        if new is not child:
            module.add_module(name, new)
    return module, converted, left
