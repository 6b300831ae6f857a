"""``imgclf bench infer``: how fast does a trained model predict here, per backend?

For each backend (torch fp32, torch bf16 where the CPU runs it natively, onnx fp32, onnx int8 when
exported) in one process: latency percentiles at batch 1 and throughput at batch 32 on uint8
pixels (normalisation included, as every backend's input is uint8), and the end-to-end latency
from encoded image bytes (decode + crop/resize + model + softmax/top-k) with the share of it spent
decoding and resizing. Test-time augmentation is off throughout (it multiplies model time by 2
or 6). The result records the machine, versions and number of runs, as every speed claim here must.
"""

from __future__ import annotations

import io
import os
import platform
import time

import numpy as np
import torch

from .._version import __version__
from ..data.run_images import RunImages
from ..device import cpu_flags, cpu_model, pick_device, pick_precision
from ..errors import DataError, UserError
from ..inference.forward import softmax
from ..inference.names import BENCH_BACKENDS
from ..inference.onnx_backend import available_cores
from ..predict import Predictor, load
from ..runs import open_run

BACKENDS = BENCH_BACKENDS
SAMPLE_IMAGES = 64  # distinct encoded images cycled through in the end-to-end timing


def bench_infer(
    run: str | os.PathLike,
    *,
    backends: tuple[str, ...] | None = None,
    runs: int = 50,
    batch: int = 32,
    batch_runs: int = 10,
    warmup: int = 3,
    seed: int = 0,
) -> dict:
    """Time every available backend of ``run`` (see the module docstring); returns a JSON-able dict."""
    r = open_run(run)
    wanted = backends or BACKENDS
    unknown = [b for b in wanted if b not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    if runs < 1 or batch < 1 or batch_runs < 1:
        raise UserError("--runs, --batch and --batch-runs must be at least 1")
    predictors, skipped = {}, []
    for name in wanted:
        p, why = _open_backend(r.root, name)
        if p is None:
            skipped.append({"backend": name, "reason": why})
        else:
            predictors[name] = p
    if not predictors:
        raise UserError(f"no backend of {r.root} can run here ({'; '.join(s['reason'] for s in skipped)})")
    first = next(iter(predictors.values()))
    pre = first.preprocess
    encoded, images_from = _sample_images(r, first, seed)
    rng = np.random.default_rng(seed)
    one = torch.from_numpy(rng.integers(0, 256, (1, pre.img_size, pre.img_size, pre.channels), dtype=np.uint8))
    many = torch.from_numpy(rng.integers(0, 256, (batch, pre.img_size, pre.img_size, pre.channels), dtype=np.uint8))

    results = []
    for name, p in predictors.items():
        latency = _times(lambda p=p: p.batch_logits([one], tta="none"), runs, warmup)
        through = _times(lambda p=p: p.batch_logits([many], tta="none"), batch_runs, 1)
        e2e, prep = [], []
        for i in range(warmup + runs):
            data = encoded[i % len(encoded)]
            t0 = time.perf_counter()
            px = pre.load(data)
            t1 = time.perf_counter()
            probs = softmax(p.batch_logits([torch.from_numpy(np.stack([px]))], tta="none"), p.temperature)
            np.argsort(-probs[0])[:5]  # top-k, as predict does
            t2 = time.perf_counter()
            if i >= warmup:
                e2e.append(t2 - t0)
                prep.append(t1 - t0)
        rates = batch / np.asarray(through)
        results.append({
            "backend": name,
            "precision": p.precision,
            "latency_ms_batch1": _percentiles(latency),
            "throughput_batch": batch,
            "throughput_images_per_s": {"mean": float(rates.mean()), "std": float(rates.std()), "runs": batch_runs},
            "end_to_end_ms": _percentiles(e2e),
            "preprocess_ms": _percentiles(prep),
            "preprocess_share": float(np.sum(prep) / np.sum(e2e)),
        })  # fmt: skip
    ref = next((x for x in results if x["backend"] == "torch-fp32"), None)
    if ref:
        for x in results:
            x["throughput_vs_torch_fp32"] = x["throughput_images_per_s"]["mean"] / ref["throughput_images_per_s"]["mean"]
    return {
        "run": str(r.root),
        "architecture": first.meta.architecture,
        "img_size": pre.img_size,
        "classes": len(first.classes),
        "runs": runs,
        "warmup": warmup,
        "batch_runs": batch_runs,
        "end_to_end_images": images_from,
        "machine": machine_info(),
        "versions": versions(),
        "backends": results,
        "skipped": skipped,
    }


def _open_backend(root, name: str) -> tuple[Predictor | None, str]:
    if name.startswith("torch"):
        precision = name.split("-")[1]
        if precision == "bf16":
            got, why = pick_precision("auto", pick_device("cpu"))
            if got != "bf16":
                return None, f"torch bf16: {why}"
        return load(root, device="cpu", precision=precision, backend="torch"), ""
    backend = "onnx" if name == "onnx-fp32" else "onnx-int8"
    try:
        return load(root, backend=backend), ""
    except UserError as exc:
        return None, str(exc)


def _times(fn, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _percentiles(seconds: list[float]) -> dict:
    ms = 1e3 * np.asarray(seconds)
    return {
        "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()), "std": float(ms.std()),
    }  # fmt: skip


def _sample_images(r, predictor: Predictor, seed: int) -> tuple[list[bytes], str]:
    """Encoded test images of the run's own data; synthetic JPEGs (2x the model's size) if it moved."""
    img_size = predictor.preprocess.img_size
    try:
        images = RunImages(r, predictor.preprocess, predictor.classes)
        encoded = images.encoded("test", SAMPLE_IMAGES, seed)
        return encoded, f"{len(encoded)} images of {images.source.uri}"
    except (UserError, DataError, KeyError, OSError):
        from PIL import Image

        rng = np.random.default_rng(seed)
        out = []
        for _ in range(8):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (2 * img_size, 2 * img_size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
            out.append(buf.getvalue())
        return out, f"8 synthetic {2 * img_size}x{2 * img_size} JPEGs (the run's data was not found)"


def machine_info() -> dict:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_threads": available_cores(),
        "int8_and_bf16_instructions": sorted(f for f in flags if f in {"avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}),
        "platform": platform.platform(),
    }


def versions() -> dict:
    import onnx
    import onnxruntime

    return {
        "imgclf": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
    }  # fmt: skip
