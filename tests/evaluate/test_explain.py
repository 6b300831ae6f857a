"""Grad-CAM: the automatically chosen layer per architecture, the maps against an independent
implementation (plain autograd hooks), a model whose evidence sits in a known place, and
`imgclf explain` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from imgclf.cli import cli, main
from imgclf.data.preprocess import Preprocess
from imgclf.evaluate.explain import explain, gradcam, overlay, target_layer
from imgclf.inference.bundle import ModelMeta
from imgclf.inference.normalize import normalize
from imgclf.models import create_model
from imgclf.models.compact import SimpleCNN
from imgclf.predict import Predictor, load

# model -> the layer Grad-CAM should explain (the last spatial feature map before pooling)
EXPECTED_LAYER = {
    "simple_cnn": lambda m: m.features,
    "fast_cnn": lambda m: m.blocks,
    "resnet18": lambda m: m.layer4,
    "mobilenetv3_small_050": lambda m: m.blocks,
    "convnext_atto": lambda m: m.stages,
    "vit_tiny_patch16_224": lambda m: m.blocks[-1].norm1,
}


def predictor_for(model: torch.nn.Module, size: int, classes: int) -> Predictor:
    meta = ModelMeta(architecture=type(model).__name__, classes=tuple(str(i) for i in range(classes)), preprocess=Preprocess(size))
    return Predictor.from_model(model, meta, device="cpu", precision="fp32")


def reference_gradcam(predictor: Predictor, pixels: np.ndarray, classes: list[int], layer, reshape=None) -> np.ndarray:
    """Grad-CAM from its definition (Selvaraju et al.): channel weights = mean gradient of the
    class score over the layer's map; ReLU of the weighted sum; min-max scaled; resized."""
    model = predictor.model
    saved = {}

    def hook(_m, _i, out):
        out.retain_grad()
        saved["a"] = out

    handle = layer.register_forward_hook(hook)
    try:
        x = normalize(torch.from_numpy(pixels), predictor.preprocess.mean, predictor.preprocess.std).requires_grad_(True)
        scores = model(x)
        scores[torch.arange(len(x)), torch.tensor(classes)].sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    a, g = saved["a"].detach(), saved["a"].grad
    if reshape is not None:
        a, g = reshape(a), reshape(g)
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))

    def scale(c):
        c = c - c.amin(dim=(1, 2), keepdim=True)
        return c / (c.amax(dim=(1, 2), keepdim=True) + 1e-7)

    cam = F.interpolate(scale(cam)[:, None], size=pixels.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
    return scale(cam).numpy()


@pytest.mark.parametrize("name", list(EXPECTED_LAYER))
def test_layer_choice_and_maps_match_the_definition(name):
    torch.manual_seed(0)
    size = 32 if name in ("simple_cnn", "fast_cnn") else 64
    model = create_model(name, 5, img_size=size).eval()
    layer, reshape = target_layer(model, img_size=size)
    assert layer is EXPECTED_LAYER[name](model)
    assert (reshape is not None) == name.startswith("vit")
    predictor = predictor_for(model, size, 5)
    pixels = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    classes = [0, 2, 4]
    maps = gradcam(predictor, pixels, classes=classes)
    assert maps.shape == (3, size, size) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    expected = reference_gradcam(predictor, pixels, classes, layer, reshape)
    assert np.abs(maps - expected).max() < 1e-3
    assert not model.training and all(p.grad is None for p in model.parameters()), "model left as found"


def test_vit_reshape_drops_prefix_tokens_and_lays_out_the_grid():
    model = create_model("vit_tiny_patch16_224", 3, img_size=64)
    _, reshape = target_layer(model)
    n, gh, gw, c = 2, *model.patch_embed.grid_size, model.embed_dim
    prefix = model.num_prefix_tokens
    tokens = torch.randn(n, prefix + gh * gw, c)
    grid = reshape(tokens)
    assert grid.shape == (n, c, gh, gw)
    assert torch.equal(grid[:, :, 1, 2], tokens[:, prefix + 1 * gw + 2, :])


@pytest.fixture(scope="module")
def patch_model():
    return train_patch_model(seed=0)


def train_patch_model(seed: int):
    """A small CNN trained to tell a red from a blue 8x8 patch placed anywhere on grey noise: its
    evidence is exactly the patch, whose position each image records."""

    def make(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.integers(40, 100, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 2, n)
        pos = rng.integers(0, 24, (n, 2))
        for i in range(n):
            r, c = pos[i]
            x[i, r : r + 8, c : c + 8] = (220, 30, 30) if y[i] == 0 else (30, 30, 220)
        return x, y, pos

    torch.manual_seed(seed)
    model = SimpleCNN(2, widths=(16, 32, 32))
    pre = Preprocess(32)
    x, y, _ = make(256, seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _epoch in range(3):
        for i in range(0, 256, 32):
            xb = normalize(torch.from_numpy(x[i : i + 32]), pre.mean, pre.std)
            loss = F.cross_entropy(model(xb), torch.from_numpy(y[i : i + 32]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return predictor_for(model.eval(), 32, 2), make(40, seed + 1000)


def test_heatmap_concentrates_on_the_evidence(patch_model):
    predictor, (x, y, pos) = patch_model
    assert np.mean(predictor.probabilities(x).argmax(1) == y) > 0.95
    maps = gradcam(predictor, x, classes=y.tolist())
    hits = 0
    for m, (r, c) in zip(maps, pos):
        inside = np.zeros_like(m, dtype=bool)
        inside[r : r + 8, c : c + 8] = True
        hits += m[inside].mean() > 2 * m[~inside].mean()
    assert hits >= 0.8 * len(x), f"the map is on the patch in only {hits} of {len(x)} images"
    # The predicted class is the default target.
    assert np.allclose(gradcam(predictor, x[:8]), gradcam(predictor, x[:8], classes=predictor.probabilities(x[:8]).argmax(1).tolist()))


def test_maps_differ_by_target_class(digits_run):
    predictor = load(digits_run, precision="fp32", backend="torch")
    from imgclf.data.sources import open_source

    source = open_source("builtin:digits")
    pixels = np.stack([predictor.preprocess.load(source.read_bytes(s.path)) for s in source.samples[:6]])
    a = gradcam(predictor, pixels, classes=[0] * 6)
    b = gradcam(predictor, pixels, classes=[7] * 6)
    assert np.abs(a - b).mean() > 0.05
    with torch.inference_mode():  # callers inside inference mode still get maps
        assert np.allclose(gradcam(predictor, pixels, classes=[0] * 6), a, atol=1e-5)


def test_overlay_colours_hot_regions_red_and_cold_regions_blue():
    img = np.full((16, 16, 3), 128, dtype=np.uint8)
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[:, 4:] = 1.0  # resized to the image: the right half is hot
    out = overlay(img, heat)
    assert out.shape == img.shape and out.dtype == np.uint8
    left, right = out[:, :6].reshape(-1, 3).mean(0), out[:, 10:].reshape(-1, 3).mean(0)
    assert left[2] > left[0] and right[0] > right[2]


def test_explain_writes_overlays_and_reports_unreadable_files(digits_run, tmp_path):
    from imgclf.data.sources import open_source

    source = open_source("builtin:digits")
    for s in source.samples[:3]:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / s.path.replace("/", "_")).write_bytes(source.read_bytes(s.path))
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    rows = explain(digits_run, [str(tmp_path / "in")], out_dir=tmp_path / "out")
    assert len(rows) == 4
    bad = [r for r in rows if "error" in r]
    assert len(bad) == 1 and bad[0]["path"].endswith("broken.png")
    predictor = load(digits_run, precision="fp32", backend="torch")
    for r in (r for r in rows if "error" not in r):
        png = Image.open(r["overlay"])
        assert png.size[0] >= 256 and png.mode == "RGB"
        assert r["explained"] == r["predicted"] == predictor.predict([r["path"]])[0].label
    rows = explain(digits_run, [str(tmp_path / "in" / "0_0000.png")], class_name="5", out_dir=tmp_path / "out5")
    assert rows[0]["explained"] == "5" and rows[0]["explained_probability"] < rows[0]["probability"]


def test_explain_cli(digits_run, tmp_path, capsys):
    from imgclf.data.sources import open_source

    source = open_source("builtin:digits")
    img = tmp_path / "seven.png"
    img.write_bytes(source.read_bytes(source.samples[7].path))
    result = CliRunner().invoke(cli, ["explain", str(digits_run), str(img), "--out", str(tmp_path / "o")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "seven.gradcam.png").exists() and "Explained 1 image(s)" in result.output
    with pytest.raises(SystemExit) as exc:
        main(["explain", str(digits_run), str(img), "--class", "cat"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "not one of the model's classes" in err and "Traceback" not in err
