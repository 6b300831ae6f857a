"""Prediction: a trained model plus its one preprocessing definition, applied to new images.

:func:`load` accepts a run directory, a model bundle folder or an exported ``.onnx`` file and
returns a :class:`Predictor` that runs on PyTorch or on onnxruntime. Both backends share one
preprocessing path (``Preprocess.load``: decode, centre-crop, resize to uint8) and one
test-time augmentation definition. Inputs stream through in batches, decoded in parallel; an
unreadable file gets an error row.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data.decode import DecodeError, is_image_name
from .data.preprocess import Preprocess
from .data.sources import BUILTIN_PREFIX, open_source
from .device import pick_device, pick_precision
from .errors import UserError
from .inference.forward import logits_for_batches, softmax
from .models.bundle import load_bundle
from .progress import progress_iter
from .runs import write_csv, write_json


@dataclass
class Prediction:
    path: str
    label: str | None = None
    probability: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)  # top-k (label, probability)
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "label": self.label,
            "probability": self.probability,
            "top": [{"label": lab, "probability": p} for lab, p in self.top],
            "error": self.error,
        }


class Predictor:
    """A model plus its preprocessing: ``predict`` files or bytes, or get logits/probabilities for pixels.

    This class runs the PyTorch model (``backend == "torch"``); :class:`OnnxPredictor` runs an
    exported file through onnxruntime with the same interface (``model`` is then None).
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, meta: dict, device: str = "auto", precision: str = "auto"):
        self.model = model
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.tta = meta.get("tta", "none")
        self.device = pick_device(device)
        self.model.to(self.device).eval()
        # auto: bf16 where the hardware runs it natively (as in training, several times faster
        # on such CPUs); evaluation and prediction share this choice, so they agree.
        self.precision, _ = pick_precision(precision, self.device)
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None

    def probabilities(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Calibrated class probabilities for uint8 NHWC pixels already fitted by ``self.preprocess``."""
        return softmax(self.logits(pixels, batch_size), self.temperature)

    def batch_probabilities(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """Like :meth:`probabilities` for a stream of uint8 NHWC batches (a whole split, say)."""
        return softmax(self.batch_logits(batches), self.temperature)

    def logits(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Raw (uncalibrated) float32 logits for uint8 NHWC pixels, with the model's TTA."""
        x = torch.as_tensor(np.asarray(pixels))
        return self.batch_logits(x[i : i + batch_size] for i in range(0, len(x), batch_size))

    def batch_logits(self, batches: Iterable[torch.Tensor], tta: str | None = None) -> np.ndarray:
        """Raw logits for a stream of uint8 NHWC batches; ``tta`` overrides the model's setting."""
        return logits_for_batches(
            self.model, batches, mean=self.preprocess.mean, std=self.preprocess.std, device=self.device,
            autocast_dtype=self.autocast_dtype, tta=self.tta if tta is None else tta,
        )  # fmt: skip

    def predict(
        self,
        inputs: Iterable[str | os.PathLike | bytes],
        *,
        top_k: int = 3,
        batch_size: int = 64,
        workers: int | None = None,
    ) -> list[Prediction]:
        """Predict files (paths), encoded images (bytes) or (name, bytes) pairs.

        Unreadable inputs get a Prediction with ``error`` set instead of raising.
        """
        return list(self.iter_predict(inputs, top_k=top_k, batch_size=batch_size, workers=workers))

    def iter_predict(self, inputs, *, top_k: int = 3, batch_size: int = 64, workers: int | None = None) -> Iterator[Prediction]:
        items = list(inputs)
        k = max(1, min(top_k, len(self.classes)))

        def load(item):
            if isinstance(item, tuple):  # (name, encoded bytes)
                name, data = item
            else:
                name, data = (f"<bytes #{id(item)}>", item) if isinstance(item, bytes) else (str(item), None)
            try:
                if data is None:
                    data = Path(item).read_bytes()
                return name, self.preprocess.load(data), None
            except DecodeError as exc:
                return name, None, exc.reason
            except OSError as exc:
                return name, None, f"cannot read file ({exc.strerror or exc})"

        def chunks():  # decode a few batches ahead, never the whole input at once
            for start in range(0, len(items), 4 * batch_size):
                yield from pool.map(load, items[start : start + 4 * batch_size])

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
            yield Prediction(name, label=top[0][0], probability=top[0][1], top=top)


class OnnxPredictor(Predictor):
    """A :class:`Predictor` over an exported ONNX file (fp32 or int8), run by onnxruntime on the CPU.

    The graph takes uint8 NHWC pixels (normalisation is inside it); test-time augmentation is
    applied here, to uint8 views, exactly as :func:`imgclf.models.infer.tta_logits` does on
    normalised ones (flips and reflect-padded shifts commute with per-channel normalisation).
    """

    backend = "onnx"

    def __init__(self, onnx_model, meta: dict):  # onnx_model: imgclf.export.runtime.OnnxModel
        self.model = None  # no PyTorch module: Grad-CAM and the like need backend="torch"
        self.onnx = onnx_model
        self.meta = meta
        self.classes = list(meta["classes"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"])
        self.temperature = float(meta.get("temperature", 1.0))
        self.tta = meta.get("tta", "none")
        self.device = torch.device("cpu")
        self.precision = "int8" if onnx_model.export_info.get("quantized") else "fp32"
        self.autocast_dtype = None
        self.path = onnx_model.path

    def batch_logits(self, batches: Iterable[torch.Tensor], tta: str | None = None) -> np.ndarray:
        mode = self.tta if tta is None else tta
        out = [tta_on_pixels(self.onnx, np.asarray(x), mode) for x in batches]
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def tta_on_pixels(forward, x: np.ndarray, tta: str = "none") -> np.ndarray:
    """``tta_logits`` for a function of uint8 NHWC pixels: the same views, the same weights."""
    if tta == "none":
        return forward(x)

    def mirrored(v):
        return 0.5 * (forward(v) + forward(v[:, :, ::-1]))

    logits = mirrored(x)
    if tta == "flip-translate":
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        shifted = [padded[:, 0:h, 0:w], padded[:, 2 : h + 2, 2 : w + 2]]
        logits = 0.5 * logits + 0.25 * sum(mirrored(v) for v in shifted)
    return logits


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
EXPORT_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def load(path: str | os.PathLike, device: str = "auto", precision: str = "auto", backend: str = "auto") -> Predictor:
    """A Predictor for a run directory, a model bundle folder or an exported ``.onnx`` file.

    ``backend``: ``torch`` runs the PyTorch model; ``onnx`` / ``onnx-int8`` run the run's
    ``export/model.onnx`` / ``export/model.int8.onnx`` with onnxruntime; ``auto`` takes the fp32
    ONNX export on a CPU when one exists *and* was exported from the run's current weights
    (a stale export is never used silently), PyTorch otherwise. From a run, the calibration
    temperature and other evaluation results come from ``model.json`` (they may be refitted
    after export); a lone ``.onnx`` file uses the metadata inside it.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{path} does not exist")
    if p.is_file():
        if p.suffix.lower() != ".onnx":
            raise UserError(f"{path} is a file but not an .onnx export; pass a run directory, a model bundle or a .onnx file")
        if backend == "torch":
            raise UserError(f"{path} is an ONNX file: it runs with the onnx backend, not torch")
        _check_onnx_options(path, device, precision)
        from .export.runtime import OnnxModel

        onnx_model = OnnxModel(p)
        return OnnxPredictor(onnx_model, onnx_model.meta)
    bundle = p / "model" if (p / "model" / "model.json").exists() else p
    if not (bundle / "model.json").exists():
        raise UserError(f"{path} is neither a run directory, a model bundle nor a .onnx file (no model.json found)")
    if backend == "auto":
        prefers_torch = pick_device(device).type != "cpu" or precision in ("bf16", "fp16")
        found = None if prefers_torch else _fresh_export(p, bundle, "onnx", explicit=False)
        if found is not None:
            return found
    elif backend != "torch":
        _check_onnx_options(path, device, precision)
        return _fresh_export(p, bundle, backend, explicit=True)
    model, meta = load_bundle(bundle)
    return Predictor(model, meta, device=device, precision=precision)


def _check_onnx_options(path, device: str, precision: str) -> None:
    if device not in ("auto", "cpu"):
        raise UserError(f"the onnx backend runs on the CPU here; use --backend torch for --device {device}")
    if precision not in ("auto", "fp32", "int8"):
        raise UserError(f"the onnx backend runs the exported precision (fp32 or int8), not {precision}; use --backend torch")


def _fresh_export(root: Path, bundle: Path, backend: str, *, explicit: bool) -> OnnxPredictor | None:
    """The run's export for ``backend`` if it matches the current weights; else None (auto) or an error."""
    from .export.metadata import weights_digest
    from .export.runtime import OnnxModel

    path = root / "export" / EXPORT_FILES[backend]
    if not path.exists():
        if explicit:
            flag = " --int8" if backend == "onnx-int8" else ""
            raise UserError(f"{root} has no {path.name} export; create it with `imgclf export {root}{flag}`")
        return None
    onnx_model = OnnxModel(path)
    if onnx_model.export_info.get("weights_sha256") != weights_digest(bundle):
        if explicit:
            raise UserError(f"{path} was exported from other weights than {bundle}'s; export again with `imgclf export {root}`")
        return None
    from .models.bundle import read_bundle_meta

    return OnnxPredictor(onnx_model, read_bundle_meta(bundle))  # model.json: the latest temperature


def expand_inputs(specs: Iterable[str], limit: int | None = None) -> list[str]:
    """Files, folders (recursively, image files only) and glob patterns -> a sorted list of files.

    ``builtin:NAME`` is not a file: it is handled by the caller through :func:`builtin_inputs`.
    """
    out: list[str] = []
    for spec in specs:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_name(f.name))
            if not found:
                raise UserError(f"folder {spec} holds no image files")
            out += found
        elif p.exists():
            out.append(str(p))
        elif any(ch in spec for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                raise UserError(f"no file matches {spec}")
            out += [m for m in matches if Path(m).is_file()]
        else:
            raise UserError(f"input {spec} does not exist")
    return out[:limit] if limit else out


def builtin_inputs(spec: str, limit: int | None = None) -> list[tuple[str, bytes]]:
    """(name, encoded bytes) for images of a built-in dataset, for trying a model without files."""
    if not spec.startswith(BUILTIN_PREFIX):
        raise ValueError(spec)
    source = open_source(spec)
    samples = source.samples[:limit] if limit else source.samples
    return [(f"{spec}/{s.path}", source.read_bytes(s.path)) for s in samples]


def write_predictions(path: Path, preds: list[Prediction]) -> None:
    """Predictions as JSON (a list of objects) or CSV (one row per image, top-k in columns)."""
    if path.suffix.lower() == ".json":
        write_json(path, [p.to_dict() for p in preds])
        return
    k = max((len(p.top) for p in preds), default=1)
    header = ["path", "label", "probability", *[f"top{i + 1}_{c}" for i in range(k) for c in ("label", "probability")], "error"]
    rows = [header]
    for p in preds:
        tops = [x for lab, pr in p.top for x in (lab, f"{pr:.6f}")]
        tops += [""] * (2 * k - len(tops))
        rows.append([p.path, p.label or "", "" if p.probability is None else f"{p.probability:.6f}", *tops, p.error or ""])
    write_csv(path, rows)
