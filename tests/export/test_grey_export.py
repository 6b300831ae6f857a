"""Grayscale and letterboxed models end to end: chosen from the data at training, recorded in
model.json and config.yaml, exported to ONNX with a one-channel input, and fed RGB photos by
predict through the one preprocessing path."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import yaml
from PIL import Image

import imgclf
from imgclf.train.config import TrainConfig
from imgclf.train.fit import fit

pytestmark = pytest.mark.slow


def grey_folder(root, size=(40, 40), per_class=12):
    """Two classes of grey ('L') images: a bright disc or a bright bar on noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    for label in ("disc", "bar"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 80, (size[1], size[0]), dtype=np.uint8)
            cx, cy = rng.integers(10, size[0] - 10), rng.integers(10, size[1] - 10)
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < 36 if label == "disc" else (abs(yy - cy) < 3) & (abs(xx - cx) < 12)
            arr[mask] = 230
            Image.fromarray(arr, "L").save(root / label / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grey")
    data = grey_folder(root / "data")
    cfg = TrainConfig(data=str(data), out=str(root / "run"), epochs=1, batch_size=8, img_size=16, val_fraction=0.2, test_fraction=0.2)
    fit(cfg)
    return root / "run"


def test_all_grey_data_trains_a_one_channel_model_and_says_so(grey_run):
    meta = json.loads((grey_run / "model" / "model.json").read_text())
    pre = meta["preprocess"]
    assert pre["channels"] == 1 and len(pre["mean"]) == 1 and len(pre["std"]) == 1 and pre["resize"] == "crop"
    config = yaml.safe_load((grey_run / "config.yaml").read_text())
    assert config["channels"] == 1 and config["resize"] == "crop"  # the choices, so --config reproduces the run
    assert json.loads((grey_run / "data_report.json").read_text())["duplicates"]["leaking_groups"] == []


def test_onnx_export_takes_one_channel_and_agrees_with_pytorch(grey_run, tmp_path):
    from runcopy import copy_run

    run = copy_run(grey_run, tmp_path / "run")
    result = imgclf.export(run)
    assert result.parity["fp32"]["passed"]
    graph = onnx.load(str(run / "export" / "model.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [16, 16, 1]
    photo = np.random.default_rng(1).integers(0, 256, (30, 45, 3), dtype=np.uint8)  # an RGB photo
    by_torch = imgclf.load(run, backend="torch").predict(photo)
    by_onnx = imgclf.load(run, backend="onnx").predict(photo)
    assert by_torch.error is None and by_onnx.label == by_torch.label
    assert by_onnx.probability == pytest.approx(by_torch.probability, abs=1e-4)


def test_wide_images_are_letterboxed_by_default_and_resize_can_be_forced(tmp_path):
    data = grey_folder(tmp_path / "data", size=(96, 32), per_class=6)
    fit(TrainConfig(data=str(data), out=str(tmp_path / "auto"), epochs=1, batch_size=4, img_size=16, channels=3))
    pre = json.loads((tmp_path / "auto" / "model" / "model.json").read_text())["preprocess"]
    assert pre["resize"] == "letterbox" and pre["channels"] == 3  # --channels 3 given: RGB even for grey files
    fit(TrainConfig(data=str(data), out=str(tmp_path / "crop"), epochs=1, batch_size=4, img_size=16, resize="squash"))
    pre = json.loads((tmp_path / "crop" / "model" / "model.json").read_text())["preprocess"]
    assert pre["resize"] == "squash" and pre["channels"] == 1
