"""The training engine's parts: precision choice, presets, parameter groups, schedules, weight
averaging, test-time augmentation, the whitened stem, and a short real training run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from synth import make_folder

import imgclf
from imgclf.device import cpu_has_fast_bf16, pick_precision
from imgclf.inference.forward import tta_logits
from imgclf.models import create_model
from imgclf.train.averaging import Lookahead
from imgclf.train.builders import fit_batch_size
from imgclf.train.config import TrainConfig
from imgclf.train.optim import make_optimizer, param_groups
from imgclf.train.presets import PRESETS, apply_preset
from imgclf.train.schedule import lr_factor

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, expected",
    [
        (frozenset({"avx512f", "avx512_bf16"}), "bf16"),
        (frozenset({"amx_bf16", "amx_tile"}), "bf16"),
        (frozenset({"avx2", "avx512f"}), "fp32"),  # bf16 would be emulated: slower than fp32
        (frozenset(), "fp32"),
    ],
)
def test_auto_precision_picks_bf16_only_where_the_cpu_runs_it(flags, expected):
    precision, why = pick_precision("auto", CPU, flags)
    assert precision == expected and why
    assert pick_precision("fp32", CPU, flags)[0] == "fp32"
    assert pick_precision("bf16", CPU, flags)[0] == "bf16"  # an explicit choice is honoured...
    if expected == "fp32":
        assert "warning" in pick_precision("bf16", CPU, flags)[1]  # ...with a warning where it is slow
    assert cpu_has_fast_bf16(flags) == (expected == "bf16")


def test_preset_fills_only_what_was_not_given():
    cfg = TrainConfig(preset="fast-small", lr=0.5)
    apply_preset(cfg, explicit={"lr"})
    assert cfg.lr == 0.5  # explicit wins
    assert cfg.model == "fast_cnn" and cfg.optimizer == "sgd" and cfg.tta == "flip-translate"
    for key, value in PRESETS["fast-small"].items():
        if key != "lr":
            assert getattr(cfg, key) == value, key
    TrainConfig(**{k: v for k, v in PRESETS["fast-small"].items()}, data="x", out="y").validate()


def test_param_groups_keep_decay_off_norms_and_biases():
    model = create_model("simple_cnn", 3)
    groups = param_groups(model, 0.1, 0.05)
    by_decay = {g["weight_decay"]: g for g in groups}
    assert all(p.ndim > 1 for p in by_decay[0.05]["params"])
    assert all(p.ndim == 1 for g in groups if g["weight_decay"] == 0 for p in g["params"])
    n = sum(len(g["params"]) for g in groups)
    assert n == len([p for p in model.parameters() if p.requires_grad])


def test_norm_lr_scale_and_scaled_decay():
    model = create_model("fast_cnn", 10)
    groups = param_groups(model, 1.0, 0.01, decay_norm_and_bias=True, bias_lr_scale=64)
    norm = next(g for g in groups if g["lr"] == 64)
    assert norm["weight_decay"] * norm["lr"] == pytest.approx(0.01)  # same shrink per step as weights
    stem_bias = model.stem.bias
    other = next(g for g in groups if any(p is stem_bias for p in g["params"]))
    assert other["lr"] == 1.0  # plain biases are not norms
    assert all(p is not model.stem.weight for g in groups for p in g["params"])  # frozen stem


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "rmsprop"])
def test_each_optimizer_is_built(name):
    cfg = TrainConfig(optimizer=name, momentum=0.8)
    opt = make_optimizer(create_model("simple_cnn", 3), cfg)
    expected = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
    assert type(opt) is expected[name]
    if name == "sgd":
        assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.8


def test_lr_schedules():
    f = lambda s, shape: lr_factor(s, 100, 20, shape=shape, start=0.2, end=0.07)  # noqa: E731
    assert f(0, "linear") == pytest.approx(0.2) and f(20, "linear") == pytest.approx(1.0)
    assert f(100, "linear") == pytest.approx(0.07) and f(60, "linear") == pytest.approx((1 + 0.07) / 2)
    assert f(100, "cosine") == pytest.approx(0.07) and f(60, "cosine") == pytest.approx((1 + 0.07) / 2)
    assert f(30, "cosine") > f(30, "linear")  # cosine stays high longer
    assert all(f(s, "cosine") >= f(s + 1, "cosine") for s in range(20, 100))


def test_lookahead_pulls_weights_towards_the_slow_copy():
    model = torch.nn.Linear(4, 2)
    la = Lookahead(model, total_steps=10, every=1)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    la.step(model, 10)  # decay 0.95^5 at the end of training
    expected = start + (1 - 0.95**5) * 1.0
    assert torch.allclose(model.weight, expected) and torch.allclose(la.slow["weight"], expected)
    with torch.no_grad():
        model.weight.add_(5.0)
    la.finish(model)  # final weights are the slow ones
    assert torch.allclose(model.weight, expected)


def test_tta_averages_views_and_is_mirror_invariant():
    torch.manual_seed(0)
    model = create_model("simple_cnn", 5).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        plain = tta_logits(model, x, "none")
        flip = tta_logits(model, x, "flip")
        both = tta_logits(model, x, "flip-translate")
        assert torch.allclose(flip, 0.5 * (model(x) + model(x.flip(-1))))
        assert torch.allclose(flip, tta_logits(model, x.flip(-1), "flip"), atol=1e-5)
        assert both.shape == plain.shape and not torch.allclose(both, flip)


def test_fast_cnn_stem_whitens_patches():
    torch.manual_seed(0)
    model = create_model("fast_cnn", 10)
    x = torch.randn(128, 3, 32, 32).cumsum(-1) * 0.3  # strongly correlated neighbouring pixels
    model.data_init(x)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, model.stem.weight[:12])
    flat = y.permute(1, 0, 2, 3).reshape(12, -1)
    cov = flat @ flat.T / flat.shape[1]
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(model.stem.weight[12:], -model.stem.weight[:12])
    model.set_epoch(0)
    assert model.stem.bias.requires_grad
    model.set_epoch(model.whiten_bias_epochs)
    assert not model.stem.bias.requires_grad


def test_large_batches_shrink_on_small_data_with_scaled_lr():
    cfg = TrainConfig(batch_size=1024, lr=1.5, optimizer="sgd")
    fit_batch_size(cfg, 1437)
    assert cfg.batch_size == 256 and cfg.lr == pytest.approx(1.5 / 4)
    cfg = TrainConfig(batch_size=64, lr=1e-3)
    fit_batch_size(cfg, 50_000)
    assert cfg.batch_size == 64 and cfg.lr == 1e-3


@pytest.mark.slow
def test_fast_small_preset_learns_in_bf16(tmp_path):
    """The preset end to end on a small folder: loss falls, accuracy rises, TTA is recorded."""
    data = make_folder(tmp_path / "d", classes=("circle", "square", "triangle", "cross"), per_class=60)
    result = imgclf.train(data, out=tmp_path / "run", preset="fast-small", epochs=6, precision="bf16")
    assert result.config.model == "fast_cnn" and result.precision == "bf16"
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["train_accuracy"] > max(0.5, epochs[0]["train_accuracy"])
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert meta["tta"] == "flip-translate"
    metrics = imgclf.evaluate(result).metrics
    assert metrics["accuracy"] > 0.5 and not math.isnan(metrics["macro_f1"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_resident_loader_matches_the_cpu_one(tmp_path):
    from imgclf.data.dataset import prepare
    from imgclf.data.loader import BatchLoader
    from imgclf.data.preprocess import Preprocess

    split = prepare(make_folder(tmp_path / "d", per_class=10), Preprocess(32), val_fraction=0, test_fraction=0).split("train")
    cpu = list(BatchLoader(split, 8, shuffle=True, seed=1))
    gpu = list(BatchLoader(split, 8, shuffle=True, seed=1, device="cuda"))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        order_c = np.argsort(yc.numpy() * 10**6 + xc.float().sum((1, 2, 3)).numpy())
        order_g = np.argsort(yg.cpu().numpy() * 10**6 + xg.cpu().float().sum((1, 2, 3)).numpy())
        assert torch.equal(xc[order_c], xg.cpu()[order_g])


def test_onecycle_and_step_schedules():
    onecycle = [lr_factor(s, 100, 30, shape="onecycle", start=0.04, end=1e-4) for s in range(101)]
    assert onecycle[0] == pytest.approx(0.04) and onecycle[30] == pytest.approx(1.0)
    assert onecycle[15] == pytest.approx(0.04 + 0.96 * 0.5)  # the cosine rise is half-way at half the warmup
    assert onecycle[100] == pytest.approx(1e-4)
    step = [lr_factor(s, 100, 0, shape="step", end=0.0) for s in range(101)]
    assert step[0] == step[49] == 1.0 and step[50] == step[74] == pytest.approx(0.1) and step[75] == pytest.approx(0.01)


def test_ema_tracks_the_weights_with_its_warmup_and_leaves_them_alone():
    from imgclf.train.averaging import EMA

    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)  # warmup decay (1 + 1) / (10 + 1) = 0.18 < 0.5
    d = 2 / 11
    expected = start * d + (start + 2.0) * (1 - d)
    assert torch.allclose(ema.module.weight, expected) and torch.allclose(ema.state_dict()["weight"], expected)
    assert torch.equal(model.weight, start + 2.0)  # the training weights are untouched
    for _ in range(20):
        ema.update(model)
    assert ema.updates == 21  # the warmup has ended: decay 0.5 per step
    restored = EMA(torch.nn.Linear(2, 1), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.module.weight, ema.module.weight)


def test_layer_decay_scales_rates_by_depth_with_timm_layers_or_compact_blocks():
    from imgclf.train.builders import build_optimizer

    model = create_model("resnet18", 3)
    opt = build_optimizer(model, TrainConfig(layer_decay=0.5, lr=1.0, optimizer="sgd"))
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert rate[id(model.fc.weight)] == 1.0  # the head trains at the full rate
    assert rate[id(model.conv1.weight)] < rate[id(model.layer4[0].conv1.weight)] < 1.0  # deeper: smaller
    assert all("lr_scale" not in g for g in opt.param_groups)  # folded into the rate LambdaLR scales
    compact = create_model("simple_cnn", 3)
    opt = build_optimizer(compact, TrainConfig(layer_decay=0.5, lr=1.0))
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert rate[id(compact.fc.weight)] == 1.0 and rate[id(compact.features[0].weight)] == 0.5


def test_dropout_and_drop_path_reach_the_model_or_are_refused():
    from imgclf.errors import UserError

    m = create_model("simple_cnn", 3, drop_rate=0.3)
    assert m.drop.p == 0.3
    t = create_model("resnet18", 3, drop_rate=0.2, drop_path_rate=0.1)
    assert t.drop_rate == 0.2 and any(type(x).__name__ == "DropPath" for x in t.modules())
    with pytest.raises(UserError, match="no dropout"):
        create_model("lenet5", 3, drop_rate=0.2)
    with pytest.raises(UserError, match="stochastic depth"):
        create_model("simple_cnn", 3, drop_path_rate=0.1)


@pytest.mark.slow
def test_ema_run_saves_the_averaged_weights(tmp_path):
    from safetensors.torch import load_file

    data = make_folder(tmp_path / "d", per_class=30)
    imgclf.train(data, out=tmp_path / "run", epochs=2, batch_size=16, weight_averaging="ema", ema_decay=0.9, val_fraction=0)
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    tensors, _, _ = __import__("imgclf.train.checkpoint", fromlist=["x"]).load_checkpoint(tmp_path / "run" / "checkpoints")
    live = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    avg = {k[len("avg."):]: v for k, v in tensors.items() if k.startswith("avg.")}
    key = "fc.weight"
    assert torch.equal(saved[key], avg[key]) and not torch.equal(saved[key], live[key])


def test_fp16_is_honoured_with_a_warning_on_cpu():
    precision, why = pick_precision("fp16", CPU, frozenset({"avx512_bf16"}))
    assert precision == "fp16" and "warning" in why
