"""Open a model for inference: a run directory, a bundle folder or an exported ``.onnx`` file ->
(backend, checked metadata). The one place that decides which backend runs a model."""

from __future__ import annotations

import os
from pathlib import Path

from ..device import pick_device
from ..errors import UserError
from .backends import Backend, TorchBackend
from .bundle import ModelMeta, load_bundle, read_meta
from .export_record import checked_export
from .imagenet_model import is_imagenet_spec, open_imagenet
from .names import BACKENDS, DEVICES, PRECISIONS


def open_model(
    path: str | os.PathLike, *, device: str = "auto", precision: str = "auto", backend: str = "auto"
) -> tuple[Backend, ModelMeta]:
    """The backend and metadata for ``path`` (see :func:`imgclf.predict.load` for the choices);
    ``imagenet:ARCH`` opens the packaged ImageNet-1k weights (:mod:`.imagenet_model`).

    ``auto`` takes the run's fp32 ONNX export on a CPU when its export check passed for the
    current weights (``export/parity.json``), PyTorch otherwise. From a run, the metadata is
    ``model.json``'s (evaluation may have refitted the temperature after the export); a lone
    ``.onnx`` file uses the metadata inside it.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if precision not in (*PRECISIONS, "int8"):
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if is_imagenet_spec(path):
        return open_imagenet(str(path), device=device, precision=precision, backend=backend)
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{path} does not exist")
    if p.is_file():
        if p.suffix.lower() != ".onnx":
            raise UserError(f"{path} is a file but not an .onnx export; pass a run directory, a model bundle or a .onnx file")
        if backend == "torch":
            raise UserError(f"{path} is an ONNX file: it runs with the onnx backend, not torch")
        _check_onnx_options(device, precision)
        from .onnx_backend import OnnxBackend

        onnx = OnnxBackend(p)
        return onnx, onnx.meta
    bundle = p / "model" if (p / "model" / "model.json").exists() else p
    if not (bundle / "model.json").exists():
        raise UserError(f"{path} is neither a run directory, a model bundle nor a .onnx file (no model.json found)")
    if backend == "auto":
        prefers_torch = pick_device(device).type != "cpu" or precision in ("bf16", "fp16")
        if not prefers_torch:
            found, _ = checked_export(p, bundle, "onnx")
            opened = _open_export(found, read_meta(bundle)) if found is not None else None
            if opened is not None:
                return opened
    elif backend != "torch":
        _check_onnx_options(device, precision)
        found, why = checked_export(p, bundle, backend)
        if found is None:
            raise UserError(why)
        opened = _open_export(found, read_meta(bundle))
        if opened is None:
            raise UserError(f"{found} was exported with other classes or preprocessing than {bundle}/model.json says; export again")
        return opened
    if precision == "int8":
        raise UserError("int8 runs only as an ONNX export; use --backend onnx-int8 (after `imgclf export RUN --int8`)")
    model, meta = load_bundle(bundle)
    return TorchBackend(model, meta.preprocess.mean, meta.preprocess.std, device=device, precision=precision), meta


def _open_export(path: Path, meta: ModelMeta) -> tuple[Backend, ModelMeta] | None:
    """The export at ``path`` with the run's current metadata, or None if the file describes another model."""
    from .onnx_backend import OnnxBackend

    onnx = OnnxBackend(path)
    if onnx.meta.classes != meta.classes or onnx.meta.preprocess != meta.preprocess:
        return None
    return onnx, meta


def _check_onnx_options(device: str, precision: str) -> None:
    if device not in ("auto", "cpu"):
        raise UserError(f"the onnx backend runs on the CPU here; use --backend torch for --device {device}")
    if precision not in ("auto", "fp32", "int8"):
        raise UserError(f"the onnx backend runs the exported precision (fp32 or int8), not {precision}; use --backend torch")
