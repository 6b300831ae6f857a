"""``imgclf export``: a run's model as ONNX (optionally int8) or TorchScript, checked every time.

Each export is compared with the PyTorch model in fp32 on the run's validation images (top-1
agreement and probability drift, written to ``export/parity.json``); an fp32 export that agrees
on fewer than 99.9% of them fails. An int8 export is calibrated on training images and its test
accuracy compared with the fp32 export's; losing more than ``allow_drop`` points fails. Failed
exports keep their files for inspection, but the error says they must not be deployed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..data.run_images import RunImages
from ..errors import UserError
from ..inference.backends import TorchBackend
from ..inference.bundle import ModelMeta, load_bundle, weights_digest
from ..inference.export_record import PARITY_FILE, check_record
from ..inference.forward import backend_logits
from ..inference.names import EXPORT_FORMATS
from ..inference.onnx_backend import OnnxBackend
from ..runs import open_run, run_lock, write_json
from .metadata import export_properties
from .parity import MIN_FP32_AGREEMENT, accuracy, compare_logits

FORMATS = EXPORT_FORMATS
FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "int8": "model.int8.onnx"}
CHECK_SPLITS = {"val": ("val", "test"), "test": ("test", "val")}  # the split asked for, then the fallback
DEFAULT_ALLOWED_DROP = 1.0  # accuracy points an int8 export may lose against fp32
NEGLIGIBLE_SPEEDUP = 1.3  # below this, int8 is not worth its accuracy risk


class ExportCheckFailed(UserError):
    """An export was written but failed its parity or accuracy check; ``result`` has the numbers."""

    def __init__(self, message: str, result: ExportResult):
        super().__init__(message)
        self.result = result


@dataclass
class ExportResult:
    export_dir: Path
    files: dict[str, Path]
    parity: dict
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def export(
    run: str | os.PathLike,
    *,
    format: str = "onnx",
    int8: bool = False,
    opset: int | None = None,
    allow_drop: float | None = None,
    data: str | None = None,
    split: str = "val",
    limit: int | None = None,
    calibration_images: int = 256,
) -> ExportResult:
    """Export ``run``'s model to ``RUN/export/`` and check it; see the module docstring.

    ``split``: the images of the parity check (the run's validation split; ``test`` also works).
    ``limit``: at most this many images per check (a random, fixed subset), for quick exports.
    ``data``: where the run's images are now, if they moved.
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}; choose {' or '.join(FORMATS)}")
    if int8 and format != "onnx":
        raise UserError("--int8 quantizes the ONNX export; use it with --format onnx")
    if allow_drop is not None and allow_drop < 0:
        raise UserError("--allow-drop is in accuracy points and cannot be negative")
    if split not in CHECK_SPLITS:
        raise UserError(f"--split {split!r}: the export is checked on val or test images")
    r = open_run(run)
    with run_lock(r.root):  # one writer per run: a training or another export of it is refused, naming its process
        model, meta = load_bundle(r.model_dir)
        model.float().eval()
        out = r.export_dir
        out.mkdir(parents=True, exist_ok=True)
        info = {
            "weights_sha256": weights_digest(r.model_dir),
            "imgclf_version": __version__,
            "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quantized": False,
        }
        images = RunImages(r, meta.preprocess, meta.classes, data, new_data_allowed=False)
        parity: dict = {"run": str(r.root), "architecture": meta.architecture, "format": format}
        result = ExportResult(out, {}, parity)
        checks = _earlier_checks(out, written=[FILES[format], *([FILES["int8"]] if int8 else [])])

        path = out / FILES[format]
        if format == "onnx":
            from .onnx_export import export_onnx

            info = export_onnx(model, meta, path, opset=opset, export_info=info)
            exported = OnnxBackend(path)
        else:
            from .torchscript import export_torchscript, load_torchscript

            info = export_torchscript(model, meta, path, export_info=info)
            module, _ = load_torchscript(path)

            def exported(x: torch.Tensor) -> np.ndarray:
                with torch.no_grad():
                    return module(x).float().numpy()

        result.files[format] = path
        parity["export"] = info

        # fp32 check: the exported graph against PyTorch fp32 on the same uint8 pixels, no TTA on
        # either side (TTA is applied outside the graph, identically for every backend).
        reference = TorchBackend(model, meta.preprocess.mean, meta.preprocess.std, device="cpu", precision="fp32")
        check_split = images.first_split(*CHECK_SPLITS[split])
        part = images.split(check_split, limit=limit)
        ref_logits = backend_logits(reference, images.batches(part))
        exp_logits = backend_logits(exported, images.batches(part))
        fp32 = {"split": check_split, **compare_logits(ref_logits, exp_logits, meta.temperature)}
        fp32["passed"] = fp32["top1_agreement"] >= MIN_FP32_AGREEMENT
        parity["fp32"] = fp32
        checks[path.name] = {"check": "fp32", "passed": fp32["passed"], **check_record(path, info["weights_sha256"])}
        if not fp32["passed"]:
            result.failures.append(
                f"the {format} export agrees with PyTorch on only {fp32['top1_agreement']:.2%} of {fp32['images']} "
                f"{check_split} images (at least {MIN_FP32_AGREEMENT:.1%} needed)"
            )

        if int8 and not result.failures:
            _int8(result, meta, info, exported, images, allow_drop, calibration_images, limit)
            q = result.parity["int8"]
            checks[FILES["int8"]] = {"check": "int8", "passed": q["passed"], **check_record(result.files["int8"], info["weights_sha256"])}

        # Written last: predict uses an export only when this records a passed check of that very file.
        parity["checks"] = checks
        write_json(out / PARITY_FILE, parity)
        if result.failures:
            raise ExportCheckFailed(
                "; ".join(result.failures) + f". Do not deploy it; the files are kept in {out} for inspection (parity.json)",
                result,
            )
        return result


def _earlier_checks(out: Path, written: list[str]) -> dict:
    """The checks parity.json holds for files this export leaves alone (a TorchScript export keeps
    the ONNX file's check). An interrupted export needs no clean-up here: each check records its
    file's sha256, and a rewritten file no longer matches the record of the old one."""
    try:
        checks = json.loads((out / PARITY_FILE).read_text(encoding="utf-8")).get("checks", {})
    except (OSError, ValueError, AttributeError, RecursionError):
        return {}
    if not isinstance(checks, dict):
        return {}
    return {name: c for name, c in checks.items() if name not in written}


def _int8(result: ExportResult, meta: ModelMeta, info: dict, fp32_model, images: RunImages, allow_drop, n_calib: int,
          limit: int | None) -> None:  # fmt: skip
    from .quantize import CALIBRATION, quantize_int8, speedup

    out = result.export_dir / FILES["int8"]
    calib = images.split("train", limit=n_calib)
    int8_info = {**info, "quantized": True, "quantization": f"static QDQ, per-channel int8 weights, uint8 activations, {CALIBRATION}",
                 "calibration_images": len(calib)}  # fmt: skip
    quantize_int8(result.files["onnx"], out, (x.numpy() for x in images.batches(calib, 32)), export_properties(meta, int8_info))
    result.files["int8"] = out
    int8_model = OnnxBackend(out)

    test_split = images.first_split("test", "val")
    part = images.split(test_split, limit=limit)
    fp32_logits = backend_logits(fp32_model, images.batches(part))
    int8_logits = backend_logits(int8_model, images.batches(part))
    acc32, acc8 = accuracy(fp32_logits, part.labels), accuracy(int8_logits, part.labels)
    drop = 100.0 * (acc32 - acc8)
    allowed = DEFAULT_ALLOWED_DROP if allow_drop is None else float(allow_drop)
    sample = np.ascontiguousarray(part.pixels[part.rows[: min(32, len(part))]])
    speed = speedup(fp32_model, int8_model, sample)
    entry = {
        "split": test_split,
        "accuracy_fp32": acc32,
        "accuracy_int8": acc8,
        "accuracy_drop_points": drop,
        "allowed_drop_points": allowed,
        "vs_fp32": compare_logits(fp32_logits, int8_logits, meta.temperature),
        "speed": speed,
        "quantization": int8_info["quantization"],
        "passed": drop <= allowed + 1e-9,  # 1 image in 100 is 1.0000000000000009 points in floating point
        "note": "accuracies of the exported graphs without test-time augmentation",
    }
    result.parity["int8"] = entry
    if speed["speedup"] is not None and speed["speedup"] < NEGLIGIBLE_SPEEDUP:
        result.notes.append(
            f"int8 is only {speed['speedup']:.2f}x as fast as fp32 for {meta.architecture} on this CPU (one batch of "
            f"{speed['batch']}); small and depthwise layers gain little from int8 kernels, so the fp32 export may serve as well"
        )
    if not entry["passed"]:
        result.failures.append(
            f"the int8 model loses {drop:.2f} accuracy points on {len(part)} {test_split} images "
            f"({acc32:.2%} -> {acc8:.2%}; at most {allowed:g} allowed, raise it with --allow-drop)"
        )
