"""Static post-training int8 quantization of an exported ONNX model with onnxruntime's tools."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from ..runs import atomic_write_bytes
from .graph import INPUT_NAME
from .onnx_export import quiet, set_properties

# Activation ranges cover this share of calibration images entirely (per tensor, the 99th
# percentile of the images' own maxima, the 1st of their minima). Plain min/max lets one unusual
# image set every scale: in a CIFAR-10 MobileNetV3, 2 of 256 training images drive some SE and
# hard-swish activations 20-350x beyond the rest, the int8 steps become coarser than typical
# values, and accuracy fell from 86% to 35%. Clipping those rare images costs them little.
RANGE_PERCENTILE = 99.0
CALIBRATION = f"per-image activation ranges, {RANGE_PERCENTILE:g}th percentile over calibration images"


def quantize_int8(
    fp32_path: Path, out_path: Path, calibration: Iterable[np.ndarray], properties: dict[str, str],
    percentile: float = RANGE_PERCENTILE,
) -> None:  # fmt: skip
    """Write the int8 version of ``fp32_path`` to ``out_path``, calibrated on uint8 NHWC batches.

    QDQ format with per-channel weights: onnxruntime fuses QuantizeLinear/DequantizeLinear pairs
    around convolutions and matrix products into int8 kernels (VNNI on this CPU), and
    per-channel weight scales keep the accuracy of nets whose channels differ in range (most
    nets with folded batch norms). Activations are uint8, with ranges from
    :func:`calibration_ranges` (robust to a few outlier images) rather than a global min/max.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quantize-") as tmp:
        pre, q, cache = (
            Path(tmp) / "pre.onnx",
            Path(tmp) / "int8.onnx",
            Path(tmp) / "ranges.json",
        )
        with quiet():
            # Shape inference and graph clean-up first, as onnxruntime recommends: quantization
            # needs every tensor's shape to place its Q/DQ nodes.
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            ranges = calibration_ranges(pre, calibration, percentile, Path(tmp))
            # onnxruntime's calibration cache is how it accepts ranges computed elsewhere.
            save_tensors_data(ranges, cache)
            quantize_static(
                str(pre), str(q), None, quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
            )  # fmt: skip
        proto = onnx.load(str(q))
    set_properties(proto, properties)
    atomic_write_bytes(out_path, proto.SerializeToString())


def calibration_ranges(
    model_path: Path,
    calibration: Iterable[np.ndarray],
    percentile: float,
    workdir: Path,
):
    """onnxruntime ``TensorsData``: for every tensor its calibrator would measure, the
    ``100 - percentile`` th percentile of the images' minima and the ``percentile`` th of their maxima.

    The ranges come from onnxruntime's own MinMax calibrator fed one image at a time; with a
    moving-average constant of 1 its running range is exactly the last image's range.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData, create_calibrator

    class OneImage(CalibrationDataReader):
        def __init__(self, x: np.ndarray):
            self.pending = [{INPUT_NAME: np.ascontiguousarray(x[None], dtype=np.uint8)}]

        def get_next(self):
            return self.pending.pop() if self.pending else None

    calibrator = create_calibrator(
        model_path, None, augmented_model_path=str(workdir / "augmented.onnx"), calibrate_method=CalibrationMethod.MinMax,
        providers=["CPUExecutionProvider"], extra_options={"moving_average": True, "averaging_constant": 1.0},
    )  # fmt: skip
    lows: dict[str, list] = {}
    highs: dict[str, list] = {}
    for batch in calibration:
        for image in batch:
            calibrator.collect_data(OneImage(image))
            for name, data in calibrator.compute_data().items():
                low, high = data.range_value
                lows.setdefault(name, []).append(np.asarray(low))
                highs.setdefault(name, []).append(np.asarray(high))
    if not lows:
        raise ValueError("no calibration images")
    return TensorsData(
        CalibrationMethod.MinMax,
        {
            name: (
                np.percentile(np.stack(lows[name]), 100.0 - percentile, axis=0).astype(
                    np.float32
                ),
                np.percentile(np.stack(highs[name]), percentile, axis=0).astype(
                    np.float32
                ),
            )
            for name in lows
        },
    )


def speedup(fp32_model, int8_model, pixels: np.ndarray, repeats: int = 3) -> dict:
    """Best-of-``repeats`` time of one batch for each model: a quick, in-export indication only
    (``imgclf bench infer`` measures properly)."""

    def best(run):
        run(pixels)  # warm-up: first calls allocate and pick kernels
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(pixels)
            times.append(time.perf_counter() - t)
        return min(times)

    t32, t8 = best(fp32_model), best(int8_model)
    return {
        "batch": len(pixels),
        "fp32_seconds": t32,
        "int8_seconds": t8,
        "speedup": t32 / t8 if t8 else None,
    }
