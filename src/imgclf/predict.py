"""Prediction: a trained model plus its one preprocessing definition, applied to new images.

:func:`load` accepts a run directory, a model bundle folder or an exported ``.onnx`` file and
returns a :class:`Predictor`, which runs on any backend of :mod:`imgclf.inference` (PyTorch,
onnxruntime fp32 or int8) through the same preprocessing (``Preprocess``: decode, centre-crop,
resize to uint8) and the same test-time augmentation. ``Predictor.predict`` takes paths, folders,
globs, bytes, PIL images and numpy arrays (:mod:`.predict_inputs`); inputs stream through in
batches, decoded in parallel, and an unreadable one gets an error row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .inference.backends import Backend, TorchBackend
from .inference.bundle import ModelMeta
from .inference.forward import backend_logits, softmax
from .inference.loading import open_model
from .predict_inputs import Item, builtin_inputs, expand_inputs, is_single, printable, to_items
from .progress import progress_iter
from .runs import write_csv, write_json

__all__ = ["Prediction", "Predictor", "builtin_inputs", "expand_inputs", "load", "write_predictions"]


@dataclass
class Prediction:
    """One image's answer: ``label`` and its calibrated ``probability``, the ``top`` k (label,
    probability) pairs, ``unsure`` (True when the probability is below the threshold evaluation
    stored in model.json, None when none was stored), or ``error`` when the image could not be used.

    ``path`` is the input's name as given (for a file, its path, which may hold bytes that are
    not UTF-8); ``display_path`` is that name as printable text.
    """

    path: str
    label: str | None = None
    probability: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    unsure: bool | None = None

    @property
    def display_path(self) -> str:
        return printable(self.path)

    def to_dict(self) -> dict:
        return {
            "path": self.display_path,
            "label": None if self.label is None else printable(self.label),
            "probability": self.probability,
            "unsure": self.unsure,
            "top": [{"label": printable(lab), "probability": p} for lab, p in self.top],
            "error": None if self.error is None else printable(self.error),
        }


class Predictor:
    """A model plus its preprocessing: ``predict`` images, or get logits/probabilities for pixels.

    ``runtime`` is the :class:`~imgclf.inference.backends.Backend` that computes logits (its name
    is ``backend``); ``meta`` the bundle's checked metadata. ``model`` is the PyTorch module on
    the torch backend (Grad-CAM needs it) and None on onnx.
    """

    def __init__(self, runtime: Backend, meta: ModelMeta):
        self.runtime = runtime
        self.meta = meta
        self.classes: list[str] = list(meta.classes)
        self.preprocess = meta.preprocess
        self.temperature = meta.temperature  # evaluation may refit it on a loaded Predictor
        self.tta = meta.tta

    @classmethod
    def from_model(cls, model: nn.Module, meta: ModelMeta, device: str = "auto", precision: str = "auto") -> Predictor:
        """A Predictor for a PyTorch model already in memory (``meta`` says how to feed it)."""
        pre = meta.preprocess
        return cls(TorchBackend(model, pre.mean, pre.std, device=device, precision=precision), meta)

    @property
    def backend(self) -> str:
        """``torch``, ``onnx`` or ``onnx-int8``."""
        return self.runtime.name

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def precision(self) -> str:
        return self.runtime.precision

    @property
    def model(self) -> nn.Module | None:
        return getattr(self.runtime, "model", None)

    @property
    def path(self) -> Path | None:
        """The exported file an onnx backend runs (None on torch)."""
        return getattr(self.runtime, "path", None)

    def __repr__(self) -> str:
        return (
            f"Predictor({self.meta.architecture}, {len(self.classes)} classes, backend={self.backend}, "
            f"precision={self.precision}, device={self.device}, img_size={self.preprocess.img_size}, tta={self.tta})"
        )

    # ------------------------------------------------------------------ pixels -> numbers

    def logits(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Raw (uncalibrated) float32 logits for uint8 NHWC pixels already fitted by ``self.preprocess``, with the model's TTA."""
        x = torch.as_tensor(np.asarray(pixels))
        return self.batch_logits(x[i : i + batch_size] for i in range(0, len(x), batch_size))

    def batch_logits(self, batches: Iterable[torch.Tensor | np.ndarray], tta: str | None = None) -> np.ndarray:
        """Raw logits for a stream of uint8 NHWC batches; ``tta`` overrides the model's setting."""
        return backend_logits(self.runtime, batches, self.tta if tta is None else tta)

    def probabilities(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Calibrated class probabilities for uint8 NHWC pixels already fitted by ``self.preprocess``."""
        return softmax(self.logits(pixels, batch_size), self.temperature)

    def batch_probabilities(self, batches: Iterable[torch.Tensor | np.ndarray]) -> np.ndarray:
        """Like :meth:`probabilities` for a stream of uint8 NHWC batches (a whole split, say)."""
        return softmax(self.batch_logits(batches), self.temperature)

    # ------------------------------------------------------------------ images -> Predictions

    def predict(self, inputs, *, top_k: int = 3, batch_size: int = 64, workers: int | None = None) -> Prediction | list[Prediction]:
        """Predict one image or many.

        ``inputs``: a path (str or PathLike) to an image file, encoded ``bytes``, a ``(name, bytes)``
        pair, a PIL image or a numpy uint8 array (HW grayscale or HWC) gives one :class:`Prediction`;
        a list or other iterable of those, a folder, a glob pattern or a 4-D NHWC array gives a
        list. Unreadable inputs get a Prediction with ``error`` set instead of raising.
        """
        preds = list(self.iter_predict(inputs, top_k=top_k, batch_size=batch_size, workers=workers))
        return preds[0] if is_single(inputs) else preds

    def iter_predict(self, inputs, *, top_k: int = 3, batch_size: int = 64, workers: int | None = None) -> Iterator[Prediction]:
        """Like :meth:`predict` but always a stream of Predictions, in input order."""
        items = to_items(inputs)
        k = max(1, min(top_k, len(self.classes)))

        def chunks():  # decode a few batches ahead, never the whole input at once
            for start in range(0, len(items), 4 * batch_size):
                yield from pool.map(self._load, items[start : start + 4 * batch_size])

        with ThreadPoolExecutor(workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
            loaded = progress_iter(chunks(), total=len(items), description="predicting")
            pending: list[tuple[str, np.ndarray | None, str | None]] = []
            for entry in loaded:
                pending.append(entry)
                if len(pending) == batch_size:
                    yield from self._finish(pending, k)
                    pending = []
            if pending:
                yield from self._finish(pending, k)

    def _load(self, item: Item) -> tuple[str, np.ndarray | None, str | None]:
        return item.load(self.preprocess)

    def _finish(self, batch, k: int) -> Iterator[Prediction]:
        good = [px for _, px, _ in batch if px is not None]
        probs = self.probabilities(np.stack(good)) if good else np.zeros((0, len(self.classes)))
        j = 0
        for name, px, error in batch:
            if px is None:
                yield Prediction(name, error=error)
                continue
            p = probs[j]
            j += 1
            order = np.argsort(-p)[:k]
            top = [(self.classes[i], float(p[i])) for i in order]
            yield Prediction(name, label=top[0][0], probability=top[0][1], top=top, unsure=self.meta.is_unsure(top[0][1]))


def load(path: str | os.PathLike, device: str = "auto", precision: str = "auto", backend: str = "auto") -> Predictor:
    """A Predictor for a run directory, a model bundle folder or an exported ``.onnx`` file.

    ``backend``: ``torch`` runs the PyTorch model; ``onnx`` / ``onnx-int8`` run the run's
    ``export/model.onnx`` / ``export/model.int8.onnx`` with onnxruntime, when ``export/parity.json``
    records a passed check of that very file for the run's current weights (a UserError
    otherwise); ``auto`` takes such an fp32 export on a CPU, PyTorch otherwise (an interrupted,
    failed or stale export is never used). From a run, the calibration temperature and other
    evaluation results come from ``model.json`` (they may be refitted after export); a lone
    ``.onnx`` file uses the metadata inside it. ``precision``: auto, fp32, bf16 or fp16 (torch);
    a precision the device cannot run is refused, never replaced by fp32.
    """
    return Predictor(*open_model(path, device=device, precision=precision, backend=backend))


def write_predictions(path: Path, preds: list[Prediction]) -> None:
    """Predictions as JSON (a list of objects) or CSV (one row per image, top-k in columns).

    File names that are not valid UTF-8 are written with U+FFFD in place of their undecodable bytes.
    """
    if path.suffix.lower() == ".json":
        write_json(path, [p.to_dict() for p in preds])
        return
    k = max((len(p.top) for p in preds), default=1)
    header = ["path", "label", "probability", "unsure", *[f"top{i + 1}_{c}" for i in range(k) for c in ("label", "probability")], "error"]
    rows = [header]
    for p in preds:
        tops = [x for lab, pr in p.top for x in (lab, f"{pr:.6f}")]
        tops += [""] * (2 * k - len(tops))
        unsure = "" if p.unsure is None else str(p.unsure).lower()
        probability = "" if p.probability is None else f"{p.probability:.6f}"
        rows.append([printable(c) for c in (p.path, p.label or "", probability, unsure, *tops, p.error or "")])
    write_csv(path, rows)
