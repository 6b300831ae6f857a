"""Transfer learning as users do it, without downloads: weights from a file, a previous run or
the Hugging Face cache; the head replaced, the backbone kept bit for bit; freezing; fine-tuning
that beats training from scratch."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from synth import make_folder

import imgclf
from imgclf.errors import UserError
from imgclf.models import create_model
from imgclf.models.pretrained import Freezer, backbone_groups, load_pretrained


def test_safetensors_file_keeps_the_backbone_and_replaces_the_head(tmp_path):
    source = create_model("simple_cnn", 3)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "w.safetensors")
    target = create_model("simple_cnn", 5)
    report = load_pretrained(target, str(tmp_path / "w.safetensors"), architecture="simple_cnn")
    assert set(report["initialised"]) == {"fc.weight", "fc.bias"} and set(report["skipped"]) == {"fc.weight", "fc.bias"}
    for k, v in source.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(target.state_dict()[k], v), k  # bit-identical before training
    assert target.fc.weight.shape == (5, 128)


def test_pth_is_read_without_unpickling_code(tmp_path):
    source = create_model("lenet5", 10)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    target = create_model("lenet5", 2)
    load_pretrained(target, str(tmp_path / "w.pth"), architecture="lenet5")
    assert torch.equal(target.features[0].weight, source.features[0].weight)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth", _use_new_zipfile_serialization=True)
    with pytest.raises(UserError, match="plain weights"):
        load_pretrained(target, str(tmp_path / "evil.pth"), architecture="lenet5")


def test_timm_weights_missing_from_the_cache_get_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=r"not in the Hugging Face cache.*huggingface-cli download timm/resnet18"):
        load_pretrained(create_model("resnet18", 3), "timm", architecture="resnet18")


def test_wrong_architecture_is_refused(tmp_path):
    save_file({"x": torch.zeros(3)}, tmp_path / "w.safetensors")
    with pytest.raises(UserError, match="fit"):
        load_pretrained(create_model("simple_cnn", 3), str(tmp_path / "w.safetensors"), architecture="simple_cnn")


def test_gradual_unfreezing_goes_from_the_top_down():
    model = create_model("resnet18", 4)
    groups = backbone_groups(model)
    freezer = Freezer(model, "gradual", head_epochs=2)
    n = len(groups)
    assert [freezer.frozen_groups(e) for e in (1, 2, 3, 4)] == [n, n, n - 1, n - 2]
    freezer.apply(3)
    assert all(not p.requires_grad for g in groups[:-1] for p in g)
    assert all(p.requires_grad for p in groups[-1]) and model.fc.weight.requires_grad
    freezer.apply(3 + n)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.slow
def test_fine_tuning_from_a_run_beats_training_from_scratch(tmp_path):
    """Pretrain on one generated dataset, fine-tune on another with few images: the pretrained
    start is better than a random one with the same budget; head-only keeps the backbone."""
    source = make_folder(tmp_path / "source", classes=("circle", "square", "triangle", "cross"), per_class=120, seed=1)
    imgclf.train(source, out=tmp_path / "pre", epochs=4, batch_size=32, val_fraction=0, seed=0, preset="none")

    target = tmp_path / "target"
    make_folder(target / "train", classes=("square", "cross"), per_class=6, seed=2)
    make_folder(target / "test", classes=("square", "cross"), per_class=40, seed=3)
    common = dict(epochs=3, batch_size=4, val_fraction=0, seed=0, lr=1e-3, preset="none")
    imgclf.train(target, out=tmp_path / "scratch", **common)
    imgclf.train(target, out=tmp_path / "tuned", pretrained=str(tmp_path / "pre"), **common)
    scratch = imgclf.evaluate(tmp_path / "scratch").metrics["accuracy"]
    tuned = imgclf.evaluate(tmp_path / "tuned").metrics["accuracy"]
    assert tuned > scratch, f"fine-tuned {tuned:.2f} vs scratch {scratch:.2f}"
    report = json.loads((tmp_path / "tuned" / "pretrained.json").read_text())
    assert set(report["initialised"]) == {"fc.weight", "fc.bias"}

    imgclf.train(target, out=tmp_path / "probe", pretrained=str(tmp_path / "pre"), freeze="head-only", **common)
    from safetensors.torch import load_file

    pre, probe = load_file(tmp_path / "pre/model/model.safetensors"), load_file(tmp_path / "probe/model/model.safetensors")
    for k, v in pre.items():
        if not k.startswith("fc."):
            assert torch.equal(probe[k], v), f"{k} changed although the backbone was frozen"
    assert probe["fc.weight"].shape == (2, 128)
