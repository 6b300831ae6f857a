"""How fast does training run here, and where does the time go?

:func:`bench_train` measures, in one process and on one device: the input pipeline alone
(cached pixels -> batched augmentation -> normalisation), full training steps (the very
:func:`~imgclf.train.engine.train_one_epoch` and step that ``imgclf train`` runs, built from the
same configuration by the same builders, presets included), the model's FLOPs per image, and the
device's matrix-product peak, so the achieved throughput can be read as a fraction of what the
hardware can do. The result records the machine, versions, number of steps and the spread of
step times, as every speed claim here must (docs/design.md).
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .._version import __version__
from ..data.loader import BatchLoader
from ..device import cpu_model, pick_device, pick_precision
from ..errors import DataError, UserError
from ..inference.normalize import normalize
from ..inference.precision import autocast
from .builders import build_loader, build_model, build_step, prepare_data
from .config import TrainConfig, resolve
from .engine import train_one_epoch
from .preprocessing import resolve_preprocess

# Square matmul size for the peak: large enough to saturate the device, small enough to take
# well under a second per product (2048^3 in fp32 is ~60 ms on 2 CPU cores; 8192^3 in bf16 is
# ~1.5 ms on an H100).
MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}


def bench_train(
    data,
    *,
    steps: int = 20,
    warmup: int = 3,
    config: TrainConfig | str | os.PathLike | None = None,
    **options,
) -> dict:
    """Measure input-pipeline and training throughput on ``data`` for the run that `imgclf train`
    with the same ``options`` (TrainConfig's fields: ``model``, ``img_size``, ``batch_size``,
    ``preset``, ``precision``, ``device``, augmentation, ...) or ``config`` would make.

    The data is prepared (decoded through the cache) first; that time is reported as
    ``prepare_seconds`` and excluded from every rate. The pipeline and the training steps each
    run ``warmup`` untimed batches, then ``steps`` timed ones. The steps are training's own:
    optimiser, loss, mixing and augmentation from the configuration; the learning rate is held at
    its peak (the schedule's shape costs nothing) and weight averaging is left out.
    """
    cfg = resolve(config, data=data, **options)
    checks = [
        (steps >= 1, "--steps must be at least 1"),
        (warmup >= 0, "--warmup must not be negative"),
        (cfg.precision in ("auto", "fp32", "bf16"), "--precision must be auto, fp32 or bf16"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    replace(cfg, out=cfg.out or "-").validate()  # a benchmark writes no run directory
    preprocess = resolve_preprocess(cfg)
    cfg.img_size = preprocess.img_size
    dev = pick_device(cfg.device)
    prec, why = pick_precision(cfg.precision, dev)
    torch.manual_seed(cfg.seed)

    t0 = time.perf_counter()
    prepared = prepare_data(cfg, preprocess)
    prepare_seconds = time.perf_counter() - t0
    split = prepared.split("train")
    if len(split) == 0:
        raise DataError("the data has no images in its train split")
    loader = build_loader(cfg, split, dev)

    # --- the input pipeline alone: gather, augment, move, normalise
    batches = _forever(loader)
    for x, _ in itertools.islice(batches, warmup):
        normalize(x.to(dev, non_blocking=True), preprocess.mean, preprocess.std)
    _sync(dev)
    seen, t0 = 0, time.perf_counter()
    for x, y in itertools.islice(batches, steps):
        normalize(x.to(dev, non_blocking=True), preprocess.mean, preprocess.std)
        y.to(dev, non_blocking=True)
        seen += len(y)
    _sync(dev)
    pipeline_ips = seen / (time.perf_counter() - t0)

    # --- the model and the step, built as the training run builds them
    net, _ = build_model(cfg, len(prepared.classes), split, preprocess, dev)
    step = build_step(cfg, net, split, len(prepared.classes), preprocess, dev, prec)

    x, y = next(batches)
    flops_fwd, flops_train = _count_flops(net, step.criterion, x, y, preprocess, dev, prec)

    # --- full training steps, through the training loop's own step
    def run_steps(n: int, after_step=None):
        train_one_epoch(net, _counted(itertools.islice(batches, n), counter), step, after_step=after_step)

    counter = [0]
    run_steps(warmup)  # ends with a host sync (the epoch's mean loss is read)
    counter[0] = 0
    marks: list = []
    if dev.type == "cuda":
        # Events timestamp each step on the GPU's timeline without making the host wait.
        start = torch.cuda.Event(enable_timing=True)
        start.record()

        def mark(_loss):
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            marks.append(ev)
    else:
        start = time.perf_counter()

        def mark(_loss):
            marks.append(time.perf_counter())

    _sync(dev)
    t0 = time.perf_counter()
    run_steps(steps, mark)
    _sync(dev)
    train_seconds = time.perf_counter() - t0
    if dev.type == "cuda":
        ends = [start.elapsed_time(ev) / 1e3 for ev in marks]
    else:
        ends = [t - start for t in marks]
    step_seconds = np.diff([0.0, *ends])
    train_ips = counter[0] / train_seconds

    peak_dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    peak_size = MATMUL_SIZE.get(dev.type, 2048)
    peak_tflops = matmul_peak_tflops(dev, peak_dtype, peak_size)
    achieved = flops_train * train_ips / 1e12

    return {
        "model": cfg.model,
        "preset": cfg.preset,
        "img_size": cfg.img_size,
        "batch_size": cfg.batch_size,
        "augmentation": loader.augment.describe() + step.mixer.describe(),
        "steps": steps,
        "warmup": warmup,
        "images": len(split),
        "classes": len(prepared.classes),
        "device": dev.type,
        "device_name": _device_name(dev),
        "precision": prec,
        "precision_reason": why,
        "prepare_seconds": prepare_seconds,
        "pipeline_images_per_second": pipeline_ips,
        "train_images_per_second": train_ips,
        "step_seconds_mean": float(np.mean(step_seconds)),
        "step_seconds_std": float(np.std(step_seconds, ddof=1)) if len(step_seconds) > 1 else 0.0,
        "pipeline_to_train_ratio": pipeline_ips / train_ips,
        "flops_per_image": flops_fwd,
        "train_flops_per_image": flops_train,
        "achieved_tflops": achieved,
        "matmul_peak_tflops": peak_tflops,
        "matmul_peak_size": peak_size,
        "matmul_peak_dtype": str(peak_dtype).removeprefix("torch."),
        "peak_fraction": achieved / peak_tflops if peak_tflops > 0 else math.nan,
        "machine": machine_info(),
        "versions": versions(),
    }


def matmul_peak_tflops(
    device: torch.device, dtype: torch.dtype, size: int, *, warmups: int = 3, repeats: int = 10
) -> float:
    """Best-of-``repeats`` TFLOP/s of a ``size`` x ``size`` matrix product: what the device's
    matrix units deliver on work shaped for them, the ceiling a training step is compared with."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=gen).to(dtype)
    b = torch.randn(size, size, device=device, generator=gen).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(warmups):
        torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e12


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def versions() -> dict:
    import timm
    import torchvision

    return {
        "imgclf": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


def _count_flops(net, criterion, x, y, preprocess, device, precision) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs per image on one batch. FlopCounterMode counts matrix
    products and convolutions only (not norms, activations or the optimiser), at any dtype."""
    x = normalize(x.to(device), preprocess.mean, preprocess.std)
    y = y.to(device)
    with torch.no_grad(), autocast(device, precision), FlopCounterMode(display=False) as fwd:
        net(x)
    with FlopCounterMode(display=False) as both:
        with autocast(device, precision):
            loss = criterion(net(x).float(), y)
        loss.backward()
    net.zero_grad(set_to_none=True)
    return fwd.get_total_flops() / len(x), both.get_total_flops() / len(x)


def _forever(loader: BatchLoader) -> Iterator:
    """Batches across as many epochs as it takes (a small split still gives ``steps`` batches)."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader


def _counted(batches: Iterable, counter: list[int]) -> Iterator:
    for x, y in batches:
        counter[0] += len(y)
        yield x, y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
