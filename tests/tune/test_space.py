"""The search space: its YAML file narrows or widens the default, bad entries are one-sentence
UserErrors naming the key, and a trial's options come out as `imgclf train` takes them."""

from __future__ import annotations

import optuna
import pytest

from imgclf.errors import UserError
from imgclf.train.config import TrainConfig, resolve
from imgclf.tune.space import AUGMENT_AT_FULL, DEFAULT_SPACE, augmentation, load_space, max_epochs, searched, suggest


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_space_searches_the_seven_dimensions():
    space = load_space()
    assert searched(space) == ["lr", "weight_decay", "batch_size", "model", "augment", "label_smoothing", "epochs"]
    assert space == DEFAULT_SPACE


def test_file_narrows_widens_and_fixes_key_by_key(tmp_path):
    space = load_space(write(tmp_path, "lr: {low: 1.0e-4, high: 1.0e-1, log: true}\nmodel: [lenet5]\nepochs: 4\nimg_size: 16\n"))
    assert space["lr"] == {"low": 1e-4, "high": 0.1, "log": True}  # widened
    assert space["model"] == ["lenet5"]
    assert space["epochs"] == 4 and space["img_size"] == 16  # fixed: no longer searched
    assert "epochs" not in searched(space) and "img_size" not in searched(space)
    assert space["weight_decay"] == DEFAULT_SPACE["weight_decay"]  # not named: the default range stays


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("learning_rate: {low: 0.1, high: 1}", "learning_rate"),
        ("out: runs/x", "out"),
        ("lr: {low: 0.1}", "lr"),
        ("lr: {low: 0.1, high: 0.01}", "lr"),
        ("lr: {low: 0, high: 1, log: true}", "lr"),
        ("epochs: {low: 1.5, high: 4}", "epochs"),
        ("epochs: {low: 1, high: 4, step: 0}", "epochs"),
        ("batch_size: []", "batch_size"),
        ("optimizer: [adamw, 3]", "optimizer"),
        ("flip: [true, maybe]", "flip"),
        ("augment: {low: 0, high: 2}", "augment"),
        ("lr: {low: a, high: 1}", "lr"),
        ("model: {low: 1, high: 2, kind: x}", "model"),
    ],
)
def test_bad_entries_are_user_errors_naming_the_key(tmp_path, text, named):
    with pytest.raises(UserError, match=named):
        load_space(write(tmp_path, text))


def test_missing_or_non_mapping_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="mapping"):
        load_space(write(tmp_path, "- lr\n- epochs\n"))


def test_suggest_draws_types_as_train_takes_them():
    space = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "epochs": {"low": 2, "high": 6, "step": 2},
             "weight_decay": {"low": 0, "high": 1}, "model": ["lenet5", "simple_cnn"], "img_size": 16}  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        options = suggest(study.ask(), space, {})
        assert isinstance(options["epochs"], int) and options["epochs"] in (2, 4, 6)
        assert isinstance(options["weight_decay"], float)  # a real option with whole-number bounds is still real
        assert 1e-3 <= options["lr"] <= 1e-2 and options["model"] in ("lenet5", "simple_cnn") and options["img_size"] == 16
        resolve(None, data="d", out="o", **options).validate()  # a trial's options are a valid configuration


def test_augment_strength_expands_and_explicit_options_win():
    trial = optuna.trial.FixedTrial({"augment": 0.5, "lr": 0.01})
    options = suggest(trial, {"augment": {"low": 0.0, "high": 1.0}, "rotation": 3.0, "lr": {"low": 1e-3, "high": 1e-1}}, {"lr": 0.5})
    assert options["crop_padding"] == AUGMENT_AT_FULL["crop_padding"] / 2 and options["erasing"] == AUGMENT_AT_FULL["erasing"] / 2
    assert options["rotation"] == 3.0  # fixed by the space file: not overridden by the strength
    assert options["lr"] == 0.5  # fixed on the command line: not drawn at all
    assert "augment" not in options and "lr" not in trial.params
    assert augmentation(0.0) == {k: 0.0 for k in AUGMENT_AT_FULL}
    TrainConfig.check_types(augmentation(1.0))


def test_max_epochs_for_hyperband():
    assert max_epochs(DEFAULT_SPACE, {}) == 10
    assert max_epochs({"epochs": [2, 7]}, {}) == 7
    assert max_epochs(DEFAULT_SPACE, {"epochs": 3}) == 3
