"""The preprocessing resolver: one decision for train, lr-find and bench train; pretrained
weights' own mean, std and interpolation are honoured and recorded in model.json."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import save_file
from synth import make_folder

import imgclf
from imgclf.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from imgclf.models import create_model
from imgclf.train.config import TrainConfig
from imgclf.train.preprocessing import resolve_preprocess

VIT = "vit_tiny_patch16_224"  # timm's pretrained_cfg: mean = std = (0.5, 0.5, 0.5), bicubic


def test_from_scratch_keeps_imagenet_statistics_at_the_models_size():
    assert resolve_preprocess(TrainConfig(model="simple_cnn")) == Preprocess(32)
    assert resolve_preprocess(TrainConfig(model=VIT)) == Preprocess(224)  # its weights' statistics are not used
    assert resolve_preprocess(TrainConfig(model=VIT, img_size=64)).img_size == 64


@pytest.mark.parametrize("source", ["timm", "weights.safetensors"])
def test_timm_weights_bring_their_own_normalisation(source):
    pre = resolve_preprocess(TrainConfig(model=VIT, img_size=32, pretrained=source))
    assert pre == Preprocess(32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


def test_weights_for_a_compact_net_keep_the_defaults(tmp_path):
    pre = resolve_preprocess(TrainConfig(model="simple_cnn", pretrained=str(tmp_path / "w.safetensors")))
    assert pre.mean == IMAGENET_MEAN and pre.std == IMAGENET_STD


def test_what_a_resumed_checkpoint_recorded_wins():
    recorded = Preprocess(48, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)).to_dict()
    assert resolve_preprocess(TrainConfig(model=VIT, pretrained="timm"), recorded).to_dict() == recorded


@pytest.mark.slow
def test_a_run_from_timm_weights_records_them_and_a_run_from_that_run_inherits_them(tmp_path):
    data = make_folder(tmp_path / "d", per_class=8)
    source = create_model(VIT, 10, img_size=32)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "vit.safetensors")
    first = imgclf.train(data, out=tmp_path / "first", model=VIT, img_size=32, epochs=1, batch_size=8,
                         pretrained=str(tmp_path / "vit.safetensors"))  # fmt: skip
    meta = json.loads((first.run_dir / "model" / "model.json").read_text())
    assert meta["preprocess"]["mean"] == [0.5, 0.5, 0.5] and meta["preprocess"]["std"] == [0.5, 0.5, 0.5]
    assert meta["preprocess"]["interpolation"] == "bicubic"
    assert json.loads((first.run_dir / "checkpoints" / "last.json").read_text())["preprocess"] == meta["preprocess"]
    second = imgclf.train(data, out=tmp_path / "second", model=VIT, img_size=32, epochs=1, batch_size=8, pretrained=str(first.run_dir))
    assert json.loads((second.run_dir / "model" / "model.json").read_text())["preprocess"] == meta["preprocess"]
    assert imgclf.load(second.run_dir).preprocess.mean == (0.5, 0.5, 0.5)  # what predict normalises with
