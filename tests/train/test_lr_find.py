"""The learning-rate range test, `--lr auto`, and fp16 training with loss scaling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from synth import make_folder

import imgclf
from imgclf.cli import cli
from imgclf.train.lr_find import suggest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("lr") / "d", per_class=40)


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = np.geomspace(1e-6, 1, 61)
    x = np.log10(lrs)
    losses = 2.0 - 1.5 / (1 + np.exp(-(x + 3) * 3))  # falls fastest at 1e-3
    losses[x > -1] += (x[x > -1] + 1) * 5  # then blows up
    assert suggest(lrs, losses) == pytest.approx(1e-3, rel=0.3)


def test_lr_find_command_plots_and_suggests(shapes, tmp_path):
    plot = tmp_path / "lr.png"
    args = ["lr-find", str(shapes), "--steps", "40", "--batch-size", "16", "--plot", str(plot)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Suggested learning rate" in result.output
    suggested = float(result.output.split("Suggested learning rate: ")[1].split()[0])
    assert 1e-7 < suggested < 10
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_auto_runs_the_range_test_and_records_the_number(shapes, tmp_path):
    imgclf.train(shapes, out=tmp_path / "run", epochs=1, batch_size=16, lr="auto")
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    found = json.loads((tmp_path / "run" / "lr_find.json").read_text())
    assert isinstance(config["lr"], float) and config["lr"] == pytest.approx(found["suggestion"])
    assert (tmp_path / "run" / "lr_find.png").exists()


def test_fp16_training_uses_loss_scaling_and_learns(shapes, tmp_path):
    result = imgclf.train(shapes, out=tmp_path / "run", model="simple_cnn", epochs=3, batch_size=16, precision="fp16")
    assert result.precision == "fp16"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(rows[-1]["train_loss"]) and rows[-1]["train_loss"] < rows[0]["train_loss"]
    state = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert state["grad_scaler"]["scale"] > 0


def test_lr_find_builds_what_train_builds_preset_included(shapes, monkeypatch):
    """`imgclf lr-find --preset fast-small` tests fast_cnn with SGD and the preset's loss and
    augmentation (it used to test simple_cnn with AdamW: the preset was applied only by train)."""
    from imgclf.train import lr_find as module

    seen = {}
    build_model, build_step, build_loader = module.build_model, module.build_step, module.build_loader

    def spy_model(cfg, *args, **kwargs):
        seen["model"] = cfg.model
        return build_model(cfg, *args, **kwargs)

    def spy_step(cfg, *args, **kwargs):
        step = build_step(cfg, *args, **kwargs)
        seen["optimizer"], seen["label_smoothing"] = type(step.optimizer).__name__, step.criterion.label_smoothing
        return step

    def spy_loader(cfg, *args, **kwargs):
        loader = build_loader(cfg, *args, **kwargs)
        seen["augmentation"] = loader.augment.describe()
        return loader

    monkeypatch.setattr(module, "build_model", spy_model)
    monkeypatch.setattr(module, "build_step", spy_step)
    monkeypatch.setattr(module, "build_loader", spy_loader)
    result = imgclf.api.lr_find(shapes, preset="fast-small", batch_size=16, steps=12, plot=None)
    assert seen["model"] == "fast_cnn" and seen["optimizer"] == "SGD" and seen["label_smoothing"] == 0.2
    assert "alternating horizontal flip" in seen["augmentation"]
    assert len(result.lrs) == len(result.losses) > 0 and result.plot is None
