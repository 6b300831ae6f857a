"""Single-channel (grayscale) models: compact nets and timm models with in_chans=1, pretrained RGB
weights adapted to them, and bundles that rebuild them from model.json."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.data.preprocess import Preprocess
from imgclf.inference.bundle import load_bundle, save_bundle
from imgclf.models.channels import adapt_input_channels
from imgclf.models.compact import COMPACT_MODELS
from imgclf.models.factory import create_model
from imgclf.predict import Predictor

GREY = Preprocess(32, mean=(0.5,), std=(0.25,), channels=1)


@pytest.mark.parametrize("name", sorted(COMPACT_MODELS))
def test_every_compact_net_takes_one_channel(name):
    torch.manual_seed(0)
    model = create_model(name, 4, in_chans=1).eval()
    x = torch.randn(3, 1, 32, 32)
    if hasattr(model, "data_init"):
        model.data_init(x)  # fast_cnn's whitening stem from one-channel patches
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 4) and torch.isfinite(out).all()


def test_rgb_weights_adapted_to_one_channel_see_a_grey_image_as_its_rgb_copy():
    """timm's adapt_input_conv sums the first convolution over R, G and B: the grey model on x
    computes what the RGB model computes on (x, x, x)."""
    torch.manual_seed(0)
    rgb = create_model("resnet18", 5).eval()
    grey = create_model("resnet18", 5, in_chans=1).eval()
    state = adapt_input_channels(rgb.state_dict(), grey.state_dict())
    grey.load_state_dict(state)  # strict: every tensor fits
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-4)
    state = rgb.state_dict()
    assert adapt_input_channels(state, state) is state  # nothing to adapt: unchanged


def test_a_grey_bundle_rebuilds_with_one_input_channel_and_predicts_rgb_input(tmp_path):
    torch.manual_seed(0)
    model = create_model("simple_cnn", 3, in_chans=1)
    meta = save_bundle(model, tmp_path, architecture="simple_cnn", classes=["a", "b", "c"], preprocess=GREY)
    assert meta.preprocess.channels == 1
    loaded, meta = load_bundle(tmp_path)
    assert loaded.features[0].in_channels == 1
    predictor = Predictor.from_model(loaded, meta, device="cpu", precision="fp32")
    colour = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    a = predictor.predict(colour)  # an RGB photo, converted by the one preprocessing path
    b = predictor.predict(np.asarray(Image.fromarray(colour).convert("L")))  # its luma, given as grey pixels
    assert a.error is None and a.top == b.top


def test_model_json_channel_count_and_statistics_are_checked(tmp_path):
    from imgclf.errors import UserError
    from imgclf.inference.bundle import ModelMeta

    raw = {"format": "imgclf-model", "format_version": 1, "architecture": "simple_cnn", "classes": ["a", "b"],
           "preprocess": {"img_size": 16, "channels": 1, "mean": [0.5], "std": [0.2]}}  # fmt: skip
    assert ModelMeta.from_dict(raw).preprocess.channels == 1
    for change, message in [({"channels": 2}, "channels must be 1"), ({"mean": [0.5, 0.5, 0.5]}, "mean must be a list of 1"),
                            ({"channels": True}, "channels must be 1")]:  # fmt: skip
        with pytest.raises(UserError, match=message):
            ModelMeta.from_dict({**raw, "preprocess": {**raw["preprocess"], **change}})
