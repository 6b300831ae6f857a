"""The drift baseline every run stores when training ends: ``RUN/model/drift_baseline.json``.

`imgclf serve` compares the traffic it sees with this file (:mod:`imgclf.serve.drift`), so it is
measured the way serving measures: the statistics of :mod:`imgclf.data.image_stats` on the very
pixels the model sees (the run's ``Preprocess``: decoded, centre-cropped, resized uint8, read
from the decoded-image cache, which holds exactly what ``Preprocess.load`` gives a served
upload), each image's original upright size from its header (:mod:`imgclf.data.image_size`),
and the confidence (top-1 probability) of the run's best model, the saved bundle.

Which images: the validation split; a run without one (``--val-fraction 0`` and no val folder)
uses its training split, and the file says so (``source.split``). At most ``sample_size`` images
(2,000, a seeded random choice: the KS test's power saturates well before that), so the cost
stays small whatever the dataset's size (BENCHMARKS.md, "drift baseline").

Confidence is computed with the bundle's temperature, which is 1 at training time; `imgclf
evaluate` refits it on the validation split and can then rewrite the confidence entry with
:func:`refresh_confidence` (it already holds the validation logits, so this costs a softmax).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.image_size import upright_size
from ..data.image_stats import CONFIDENCE, DEFAULT_SAMPLE_SIZE, batch_image_stats, compute_baseline
from ..inference.forward import backend_logits, softmax
from ..inference.loading import open_model
from ..progress import log
from ..runs import Run, write_json
from .callbacks import Callback

if TYPE_CHECKING:
    from ..data.dataset import PreparedData, Split

BASELINE_FILE = "drift_baseline.json"
CHUNK = 256  # images per step: bounds memory at large sizes (256 x 224^2 x 3 B = 39 MB of pixels)


class DriftBaseline(Callback):
    """Write ``RUN/model/drift_baseline.json`` once a run has finished training."""

    def __init__(self, sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0):
        self.sample_size, self.seed = sample_size, seed

    def on_run_end(self, ctx, result) -> None:
        if result is None or not _is_main_process():
            return  # a failed run has no final model; under DDP one process writes the run
        t0 = time.perf_counter()
        try:
            baseline = baseline_for_run(
                ctx.run, ctx.data, device=ctx.device.type, precision=ctx.precision, sample_size=self.sample_size, seed=self.seed
            )
        except Exception as exc:  # noqa: BLE001 - the trained model matters more than its drift baseline
            log(f"drift baseline not written: {exc}")
            return
        log(f"drift baseline: {baseline['source']['images']} {baseline['source']['split']} images "
            f"({time.perf_counter() - t0:.1f}s) -> {ctx.run.model_dir / BASELINE_FILE}")  # fmt: skip


def baseline_split(data: PreparedData) -> tuple[str, Split]:
    """The split the baseline describes: validation, or training when the run has no val images."""
    val = data.split("val")
    return ("val", val) if len(val) else ("train", data.split("train"))


def baseline_for_run(
    run: Run, data: PreparedData, *, device: str = "auto", precision: str = "auto",
    sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0,
) -> dict:  # fmt: skip
    """Measure the baseline of ``run``'s saved model on ``data`` and write it; returns it."""
    name, split = baseline_split(data)
    pick = np.sort(np.random.default_rng(seed).permutation(len(split))[:sample_size])
    backend, meta = open_model(run.root, device=device, precision=precision, backend="torch")
    columns: list[dict[str, np.ndarray]] = []
    confidences: list[np.ndarray] = []
    for start in range(0, len(pick), CHUNK):
        chunk = pick[start : start + CHUNK]
        pixels = np.ascontiguousarray(split.pixels[split.rows[chunk]])
        sizes = [_original_size(data, split.samples[i].path, pixels.shape[1:3]) for i in chunk]
        columns.append(batch_image_stats(pixels, sizes))
        probs = softmax(backend_logits(backend, [pixels], meta.tta), meta.temperature)
        confidences.append(probs.max(axis=1))
    stats = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
    baseline = compute_baseline(stats, np.concatenate(confidences), sample_size=sample_size, seed=seed)
    baseline["source"] = {
        "split": name,
        "images": int(len(pick)),
        "of": int(len(split)),
        "img_size": meta.preprocess.img_size,
        "why": "the validation split" if name == "val" else "the run has no validation split, so its training split",
        "confidence_temperature": float(meta.temperature),
        "confidence_tta": meta.tta,
        "confidence_from": "training (temperature 1 until `imgclf evaluate` refits it)",
    }
    write_json(run.model_dir / BASELINE_FILE, baseline)
    return baseline


def refresh_confidence(model_dir: str | Path, confidences, temperature: float, split: str = "val") -> bool:
    """Replace the confidence entry of ``model_dir``'s baseline by ``confidences`` (top-1
    probabilities under the refitted ``temperature``); False when the run has no baseline file."""
    path = Path(model_dir) / BASELINE_FILE
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    fresh = compute_baseline({}, np.asarray(confidences, dtype=np.float64), sample_size=DEFAULT_SAMPLE_SIZE)
    baseline["statistics"][CONFIDENCE] = fresh["statistics"][CONFIDENCE]
    baseline.setdefault("source", {}).update(
        confidence_temperature=float(temperature), confidence_from=f"evaluation ({split} split, refitted temperature)"
    )
    write_json(path, baseline)
    return True


def _original_size(data: PreparedData, path: str, fitted: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the sample before resizing, read from its header: the cache keeps only
    the fitted pixels. An unreadable file (moved since decoding) falls back to the fitted size."""
    try:
        size = upright_size(data.source.read_bytes(path))
    except OSError:
        size = None
    return size or (int(fitted[1]), int(fitted[0]))


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
