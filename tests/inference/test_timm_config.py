"""A run's model/ folder is also a timm model folder: timm.create_model("local-dir:RUN/model") loads it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from synth import make_folder

import imgclf
from imgclf.data.preprocess import Preprocess
from imgclf.inference.normalize import normalize
from imgclf.inference.timm_config import timm_data_config


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("timm-config") / "d", per_class=6, size=40)


@pytest.mark.slow
def test_timm_loads_the_trained_model_with_its_labels_and_preprocessing(shapes, tmp_path):
    run = imgclf.train(shapes, out=tmp_path / "run", preset="none", model="tf_efficientnet_lite0", img_size=40, epochs=1, batch_size=8,
                       device="cpu").run_dir  # fmt: skip
    config = json.loads((run / "model" / "config.json").read_text())
    meta = json.loads((run / "model" / "model.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and config["num_classes"] == 3
    assert config["label_names"] == meta["classes"]
    cfg = config["pretrained_cfg"]
    pre = meta["preprocess"]
    assert cfg["input_size"] == [3, 40, 40] and cfg["interpolation"] == pre["interpolation"]
    assert cfg["mean"] == pre["mean"] and cfg["std"] == pre["std"] and cfg["crop_pct"] == 1.0 and cfg["crop_mode"] == "center"

    theirs = timm.create_model(f"local-dir:{run / 'model'}", pretrained=True).eval()
    ours = imgclf.load(run, backend="torch", device="cpu", precision="fp32")
    assert theirs.pretrained_cfg["label_names"] == list(ours.classes)
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 40, 40, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = theirs(normalize(torch.from_numpy(pixels), tuple(cfg["mean"]), tuple(cfg["std"])).contiguous()).numpy()
    assert np.allclose(ours.logits(pixels), expected, atol=1e-4)
    # timm's own data config for the loaded model is the bundle's preprocessing.
    data_cfg = timm.data.resolve_data_config(model=theirs)
    assert data_cfg["input_size"] == (3, 40, 40) and data_cfg["crop_pct"] == 1.0
    assert np.allclose(data_cfg["mean"], pre["mean"]) and np.allclose(data_cfg["std"], pre["std"])


@pytest.mark.slow
def test_a_compact_net_gets_no_timm_config(shapes, tmp_path):
    run = imgclf.train(shapes, out=tmp_path / "run", preset="none", model="simple_cnn", epochs=1, batch_size=8, device="cpu").run_dir
    assert (run / "model" / "model.json").exists() and not (run / "model" / "config.json").exists()


def test_resize_modes_map_onto_timms_crop_modes():
    assert timm_data_config(Preprocess(64))["crop_mode"] == "center"
    for resize, mode in (("squash", "squash"), ("letterbox", "border")):
        try:
            pre = Preprocess(64, resize=resize)
        except ValueError:
            pytest.skip(f"this Preprocess has no {resize} mode")
        assert timm_data_config(pre)["crop_mode"] == mode
