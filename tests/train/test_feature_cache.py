"""--cache-features: the frozen layers run once per image and view, the rest trains on their
outputs, and the result is the run that back-propagating through the frozen network gives."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from synth import make_folder

import imgclf
from imgclf.train.callbacks import Callback

# Augmentation and dropout off, fp32: with the same seed the two paths see the same batches, so
# they must train the same weights (up to float summation order).
EXACT = dict(model="tf_efficientnet_lite0", img_size=32, batch_size=8, precision="fp32", flip=False, crop_padding=0.0, dropout=0.0,
             val_fraction=0.2, test_fraction=0.1, preset="none", seed=3, device="cpu")  # fmt: skip


class StemCounter(Callback):
    """Images through the network's first layer during each epoch."""

    def __init__(self):
        self.per_epoch, self.seen = [], 0

    def on_train_start(self, ctx):
        first = next(m for m in ctx.model.modules() if isinstance(m, torch.nn.Conv2d))
        first.register_forward_hook(lambda _m, args, _out: setattr(self, "seen", self.seen + len(args[0])))

    def on_epoch_end(self, ctx, record):
        self.per_epoch.append(self.seen)
        self.seen = 0


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("fc") / "d", per_class=8, size=32)


def _train(data, out, **options):
    counter = StemCounter()
    result = imgclf.train(data, out=out, callbacks=[counter], **{**EXACT, **options})
    return result, counter.per_epoch, load_file(str(result.run_dir / "model" / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("freeze, epochs", [("head-only", 3), ("gradual", 3)])
def test_cached_features_train_what_the_frozen_network_trains(shapes, tmp_path, freeze, epochs, monkeypatch):
    monkeypatch.setenv("IMGCLF_FROZEN_ONNX", "0")  # PyTorch computes the cache: the hook counts its passes
    cached, counts, weights = _train(shapes, tmp_path / "cached", freeze=freeze, epochs=epochs, freeze_epochs=1)
    plain, plain_counts, plain_weights = _train(shapes, tmp_path / "plain", freeze=freeze, epochs=epochs, freeze_epochs=1,
                                                cache_features=False)  # fmt: skip
    assert weights.keys() == plain_weights.keys()
    for k in weights:
        assert torch.allclose(weights[k], plain_weights[k], rtol=1e-3, atol=1e-5), k
    assert cached.best_val_accuracy == plain.best_val_accuracy
    n_train, n_val = cached.split_sizes["train"], cached.split_sizes["val"]
    # Cached: the frozen layers see each training and validation image once, in the first epoch.
    assert counts == [n_train + n_val] + [0] * (epochs - 1)
    # Not cached: every epoch runs them for every training batch (drop_last) and for validation.
    assert plain_counts == [n_train // 8 * 8 + n_val] * epochs


@pytest.mark.slow
def test_views_are_computed_once_each_and_the_bundle_is_the_whole_network(shapes, tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_FROZEN_ONNX", "0")
    result, counts, weights = _train(shapes, tmp_path / "run", freeze="head-only", epochs=2, feature_views=3, flip=True)
    n_train, n_val = result.split_sizes["train"], result.split_sizes["val"]
    assert counts == [3 * n_train + n_val, 0]
    assert "conv_stem.weight" in weights and "classifier.weight" in weights
    predictor = imgclf.load(result.run_dir)
    assert predictor.predict(str(next(shapes.rglob("*.png")))).label in predictor.classes


@pytest.mark.slow
def test_a_model_whose_output_is_not_its_heads_is_not_cut(shapes, tmp_path, capsys):
    # fast_cnn scales its logits after the head: the cached path would train something else.
    result, counts, _ = _train(shapes, tmp_path / "run", model="fast_cnn", freeze="head-only", epochs=2, dropout=None)
    assert "features: not cached (fast_cnn's output is not its head's output" in capsys.readouterr().err
    assert counts[1] > 0  # the frozen layers ran in the second epoch too


@pytest.mark.slow
def test_frozen_layers_in_onnxruntime_train_what_pytorch_trains(shapes, tmp_path, monkeypatch, capsys):
    """On a CPU the cache is filled by onnxruntime (faster there): same features up to float
    rounding, so the same training; PyTorch never runs the frozen layers for the cache."""
    monkeypatch.setenv("IMGCLF_FROZEN_ONNX", "1")
    fast, counts, weights = _train(shapes, tmp_path / "ort", freeze="head-only", epochs=2)
    assert "the frozen layers run in onnxruntime" in capsys.readouterr().err
    assert counts[1] == 0  # nothing ran the frozen layers after the first epoch
    monkeypatch.setenv("IMGCLF_FROZEN_ONNX", "0")
    _, _, plain_weights = _train(shapes, tmp_path / "torch", freeze="head-only", epochs=2)
    for k in weights:
        assert torch.allclose(weights[k], plain_weights[k], rtol=1e-3, atol=1e-4), k
