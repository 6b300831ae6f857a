"""int8 calibration: activation ranges robust to a few outlier images, checked against numpy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from imgclf.data.run_images import RunImages
from imgclf.export.onnx_export import export_onnx
from imgclf.export.quantize import RANGE_PERCENTILE, quantize_int8
from imgclf.inference.bundle import load_bundle
from imgclf.runs import open_run

pytestmark = pytest.mark.slow


def input_quantization(path) -> tuple[float, int]:
    """(scale, zero point) of the normalised pixels entering the int8 model's first convolution."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: n for n in graph.node for out in n.output}
    conv = next(n for n in graph.node if n.op_type == "Conv")
    dq = producer[conv.input[0]]
    assert dq.op_type == "DequantizeLinear"
    return float(inits[dq.input[1]]), int(inits[dq.input[2]])


def test_one_outlier_image_does_not_set_the_activation_range(digits_run, tmp_path):
    """Dim calibration images plus one white image: plain min/max would stretch the input's range
    to the white image; the range must be the numpy percentile of the images' own extremes."""
    model, meta = load_bundle(digits_run / "model")
    fp32 = tmp_path / "model.onnx"
    export_onnx(model.float().eval(), meta, fp32)
    r = open_run(digits_run)
    train = RunImages(r, meta.preprocess, meta.classes).split("train", limit=99)
    pixels = train.pixels[train.rows] // 4  # values 0..63
    pixels = np.concatenate([pixels[:50], np.full_like(pixels[:1], 255), pixels[50:]])
    out = tmp_path / "model.int8.onnx"
    quantize_int8(
        fp32,
        out,
        (pixels[i : i + 32] for i in range(0, len(pixels), 32)),
        {"imgclf.test": "1"},
    )

    # The same normalisation as the graph, written out with numpy: (pixels - mean*255) / (std*255).
    mean = np.array(meta.preprocess.mean, dtype=np.float64) * 255.0
    std = np.array(meta.preprocess.std, dtype=np.float64) * 255.0
    x = (pixels.astype(np.float64) - mean) / std
    lows, highs = x.reshape(len(x), -1).min(1), x.reshape(len(x), -1).max(1)
    rmin = min(np.percentile(lows, 100 - RANGE_PERCENTILE), 0.0)
    rmax = max(np.percentile(highs, RANGE_PERCENTILE), 0.0)
    scale, zero_point = input_quantization(out)
    assert scale == pytest.approx((rmax - rmin) / 255.0, rel=1e-4)
    assert zero_point == round(-rmin / scale)
    assert (
        scale < 0.5 * (highs.max() - rmin) / 255.0
    )  # what min/max calibration would have used
    assert {"imgclf.test": "1"}.items() <= {
        p.key: p.value for p in onnx.load(str(out)).metadata_props
    }.items()
