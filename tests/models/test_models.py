"""Every architecture family the seed documents name builds, runs forward and backward at a
small size and gives one logit per class; bundles round-trip."""

from __future__ import annotations

import pytest
import torch

from imgclf.errors import UserError
from imgclf.inference.bundle import load_bundle, save_bundle
from imgclf.models import create_model
from imgclf.models.factory import list_models

# family -> (model name, smallest input size it takes)
FAMILIES = {
    "simple CNN": ("simple_cnn", 32),
    "LeNet-5": ("lenet5", 32),
    "AlexNet": ("alexnet_small", 32),
    "VGG": ("vgg11_bn", 32),
    "GoogLeNet/Inception": ("inception_v3", 75),
    "ResNet": ("resnet18", 32),
    "DenseNet": ("densenet121", 32),
    "MobileNet": ("mobilenetv3_small_100", 32),
    "EfficientNet": ("efficientnet_b0", 32),
    "ViT": ("vit_tiny_patch16_224", 32),
    "airbench-style": ("fast_cnn", 32),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_by_name(family):
    name, size = FAMILIES[family]
    torch.manual_seed(0)
    model = create_model(name, 7, img_size=size).train()
    x = torch.randn(2, 3, size, size)
    out = model(x)
    if isinstance(out, tuple):  # inception's auxiliary head in training mode
        out = out[0]
    assert out.shape == (2, 7)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[-3:])


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserError, match="did you mean.*resnet18"):
        create_model("resnet_18", 3)


def test_list_models_reports_params_and_flops():
    rows = {r["name"]: r for r in list_models("lenet", img_size=32)}
    lenet = rows["lenet5"]
    model = create_model("lenet5", 10)
    assert lenet["params"] == sum(p.numel() for p in model.parameters())
    # conv1 6x3x5x5 at 32x32, conv2 16x6x5x5 at 12x12 (after a 2x pool: 16 -> 12), then 400-120-84-10
    expected = 2 * (6 * 3 * 25 * 32 * 32 + 16 * 6 * 25 * 12 * 12 + 400 * 120 + 120 * 84 + 84 * 10)
    assert lenet["gflops"] * 1e9 == pytest.approx(expected)
    assert any(r["source"] == "timm" for r in list_models("resnet1", limit=1))


def test_bundle_round_trip_is_exact(tmp_path):
    model = create_model("simple_cnn", 4).eval()
    save_bundle(model, tmp_path, architecture="simple_cnn", classes=list("abcd"), preprocess={"img_size": 32})
    loaded, meta = load_bundle(tmp_path)
    assert list(meta.classes) == list("abcd")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file
