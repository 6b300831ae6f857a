"""One model in service: its Predictor, its batcher, its drift monitor, and who is still using it.

A :class:`LoadedModel` is built completely (weights loaded, batcher warmed up) before it takes
traffic, and retired only after the last request that started on it has finished: that is what
lets :class:`~.service.Service` swap models without downtime.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import numpy as np

from ..data.preprocess import as_rgb
from ..errors import UserError
from ..inference.bundle import file_digest
from ..predict import Predictor, load
from . import metrics
from .batcher import MicroBatcher
from .drift import DriftMonitor
from .drift_feed import DriftFeed
from .settings import ServeSettings

BASELINE_FILE = "drift_baseline.json"  # RUN/model/drift_baseline.json, written at training time
EVAL_METRICS = ("eval", "metrics.json")
_EVAL_TEXT_KEYS = ("split",)  # metrics.json's text values other than these may name paths: not served
_EVAL_STRUCTURED_KEYS = ("accuracy_ci95", "per_class")


def bundle_dir(run: Path) -> Path | None:
    """The model bundle of a run directory (or the bundle folder itself); None for a lone .onnx file."""
    if (run / "model" / "model.json").is_file():
        return run / "model"
    if (run / "model.json").is_file():
        return run
    return None


def model_signature(run: str | os.PathLike) -> tuple:
    """What changes when a different model appears at ``run``: where a `current` link points, and
    the size and modification time of the files a model is loaded from. Cheap (a few stat calls)."""
    real = Path(os.path.realpath(Path(run).expanduser()))
    bundle = bundle_dir(real)
    files = [real] if bundle is None else [bundle / "model.json", bundle / "model.safetensors", real / "export" / "parity.json"]
    stamps = []
    for f in files:
        try:
            st = f.stat()
            stamps.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append(None)
    return (str(real), *stamps)


class LoadedModel:
    """A Predictor ready to serve. Build it off the event loop: loading takes seconds."""

    def __init__(self, settings: ServeSettings):
        self.signature = model_signature(settings.run)
        self.root = Path(self.signature[0])
        self.predictor: Predictor = load(self.root, backend=settings.backend)
        bundle = bundle_dir(self.root)
        self.run_name = (self.root.parent.name if bundle == self.root and self.root.name == "model" else self.root.name) or "model"
        weights = bundle / "model.safetensors" if bundle is not None else self.root
        self.version = f"{self.run_name}@{file_digest(weights)[:12]}"
        self.evaluation = _read_evaluation(self.root)
        self.drift, self.drift_unavailable = _drift_monitor(bundle, settings.drift_window)
        self.drift_feed = DriftFeed(self.drift) if self.drift is not None else None
        self._bundle = bundle
        self._explainer: Predictor | None = None
        self._explain_lock = threading.Lock()
        self._users = 0
        self._idle = threading.Condition()
        self.batcher = MicroBatcher(
            self._probabilities, max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000, name=f"model {self.version}"
        )
        pre = self.predictor.preprocess
        warm = np.zeros((pre.img_size, pre.img_size, getattr(pre, "channels", 3)), np.uint8)
        self.batcher.submit(warm).result()  # warm up before taking traffic

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    def _probabilities(self, pixels: list[np.ndarray]) -> list[np.ndarray]:
        metrics.BATCH_SIZE.observe(len(pixels))
        probs = self.predictor.probabilities(np.stack(pixels), batch_size=len(pixels))
        return list(probs)

    # ------------------------------------------------------------------ who is using it

    def acquire(self) -> None:
        with self._idle:
            self._users += 1

    def release(self) -> None:
        with self._idle:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def retire(self, timeout: float = 300.0) -> None:
        """Wait until no request uses this model (at most ``timeout`` seconds), then stop its batcher."""
        with self._idle:
            self._idle.wait_for(lambda: self._users == 0, timeout)
        self.batcher.close(timeout)
        if self.drift_feed is not None:
            self.drift_feed.close(timeout)

    # ------------------------------------------------------------------ Grad-CAM

    def explain_png(self, pixels: np.ndarray, target: int | None) -> tuple[bytes, int, np.ndarray]:
        """The Grad-CAM overlay (PNG bytes) of one fitted image, the class explained, and its probabilities.

        Runs on a PyTorch fp32 copy of the model loaded on first use, whatever the serving backend:
        Grad-CAM needs gradients, and its hooks must not touch the model the batcher runs.
        """
        from PIL import Image

        from ..evaluate.explain import MIN_DISPLAY_SIZE, gradcam, overlay

        with self._explain_lock:  # the library's hooks are per model: one explanation at a time
            explainer = self._torch_explainer()
            batch = pixels[None].copy()  # decoded pixels are read-only; torch wants its own
            probs = explainer.probabilities(batch)[0]
            k = int(probs.argmax()) if target is None else int(target)
            try:
                heatmap = gradcam(explainer, batch, classes=[k])[0]
            except ValueError as exc:  # e.g. an input layout Grad-CAM does not take
                raise UserError(f"this model cannot be explained here ({exc})") from None
        shown = as_rgb(pixels)  # a grey model's input, shown in RGB
        scale = max(1, -(-MIN_DISPLAY_SIZE // pixels.shape[1]))
        big = Image.fromarray(shown).resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        Image.fromarray(overlay(np.asarray(big), heatmap)).save(buf, format="PNG")
        return buf.getvalue(), k, probs

    def _torch_explainer(self) -> Predictor:
        if self._explainer is None:
            if self._bundle is None:
                raise UserError("explanations need the PyTorch weights, and this service runs a lone .onnx file")
            self._explainer = load(self.root, precision="fp32", backend="torch")
            self._explainer.temperature = self.predictor.temperature
        return self._explainer

    # ------------------------------------------------------------------ description

    def describe(self) -> dict:
        meta = self.predictor.meta
        return {
            "version": self.version,
            "run": self.run_name,
            "architecture": meta.architecture,
            "img_size": meta.preprocess.img_size,
            "backend": self.predictor.backend,
            "precision": self.predictor.precision,
            "tta": self.predictor.tta,
            "temperature": self.predictor.temperature,
            "unsure_threshold": meta.unsure_threshold,
            "unsure_evaluated": meta.unsure_evaluated,
        }


def _read_evaluation(root: Path) -> dict | None:
    """The numbers of RUN/eval/metrics.json (None when the run was not evaluated or it is unreadable)."""
    try:
        raw = json.loads(root.joinpath(*EVAL_METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    out = {k: v for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update({k: raw[k] for k in (*_EVAL_TEXT_KEYS, *_EVAL_STRUCTURED_KEYS) if k in raw})
    return out


def _drift_monitor(bundle: Path | None, window: int) -> tuple[DriftMonitor | None, str | None]:
    """The drift monitor for the bundle's baseline, or (None, why there is none)."""
    if bundle is None or not (bundle / BASELINE_FILE).is_file():
        return None, f"the model has no {BASELINE_FILE} (runs trained by an older imgclf); retrain to monitor drift"
    try:
        baseline = json.loads((bundle / BASELINE_FILE).read_text(encoding="utf-8"))
        return DriftMonitor(baseline, window=window), None
    except (OSError, ValueError, UserError) as exc:
        return None, f"the model's {BASELINE_FILE} is unusable ({exc})"
