"""The public Python API's shape: a real signature for imgclf.train, top-level names that stay
functions, options forwarded and checked, and the examples of help(imgclf) true."""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys
from dataclasses import fields

import pytest
import synth

import imgclf
from imgclf.api import Default
from imgclf.errors import UserError
from imgclf.train.config import TrainConfig

NOT_OPTIONS = {"config", "overwrite", "resume", "callbacks"}


def test_train_signature_lists_every_config_field():
    params = inspect.signature(imgclf.train).parameters
    assert [p for p in params if p not in NOT_OPTIONS] == [f.name for f in fields(TrainConfig)]
    for f in fields(TrainConfig):
        if f.name == "data":
            continue
        p = params[f.name]
        assert p.kind is inspect.Parameter.KEYWORD_ONLY
        assert isinstance(p.default, Default) and p.default.name == f.name and p.default.value == f.default
        assert repr(p.default) == repr(f.default)  # what help() and tab completion show
    assert "``schedule`` (default 'cosine')" in imgclf.train.__doc__  # the options' help is in the docstring


def test_top_level_names_stay_functions_after_submodule_imports():
    code = (
        "import imgclf, imgclf.train.config, imgclf.train.presets, imgclf.evaluate, imgclf.export, imgclf.models.compact\n"
        "from imgclf.models import create_model\n"
        "import inspect, types\n"
        "print(all(inspect.isfunction(getattr(imgclf, n)) for n in ('train', 'evaluate', 'export', 'list_models', 'load')),\n"
        "      isinstance(imgclf.models, types.ModuleType))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True True"  # imgclf.models stays the subpackage


def test_everything_in_all_is_public_and_documented():
    for name in imgclf.__all__:
        obj = getattr(imgclf, name)
        assert name == "__version__" or (callable(obj) and obj.__doc__), name


def fake_fit(calls):
    def fit(cfg, **kwargs):
        calls.append((cfg, kwargs))
        return "result"

    return fit


def test_train_forwards_explicit_options_and_lets_a_preset_fill_the_rest(monkeypatch, tmp_path):
    fit_module = importlib.import_module("imgclf.train.fit")
    calls = []
    monkeypatch.setattr(fit_module, "fit", fake_fit(calls))
    assert imgclf.train(tmp_path, out=tmp_path / "r", preset="fast-small", batch_size=64, overwrite=True) == "result"
    cfg, kwargs = calls[0]
    assert cfg.data == str(tmp_path) and cfg.out == str(tmp_path / "r")
    assert cfg.batch_size == 64  # given explicitly (even at its default): the preset's 1024 does not apply
    assert cfg.model == "fast_cnn" and cfg.optimizer == "sgd"  # not given: the preset's
    assert kwargs == {"overwrite": True}


@pytest.mark.parametrize("options, key", [({"epochs": 1.5}, "epochs"), ({"flip": "no"}, "flip"), ({"val_fraction": None}, "val_fraction")])
def test_train_checks_keyword_values_before_training(monkeypatch, tmp_path, options, key):
    fit_module = importlib.import_module("imgclf.train.fit")
    calls = []
    monkeypatch.setattr(fit_module, "fit", fake_fit(calls))
    with pytest.raises(UserError, match=key):
        imgclf.train(tmp_path, out=tmp_path / "r", **options)
    assert not calls


def test_train_rejects_an_unknown_option():
    with pytest.raises(TypeError, match="epochz"):
        imgclf.train("builtin:digits", out="x", epochz=3)


def test_lr_find_applies_the_preset(monkeypatch, tmp_path):
    """`imgclf lr-find --preset fast-small` used to test simple_cnn with AdamW."""
    module = importlib.import_module("imgclf.train.lr_find")
    seen = []
    monkeypatch.setattr(module, "lr_find", lambda cfg, **kw: seen.append((cfg, kw)) or "found")
    assert imgclf.lr_find("builtin:digits", preset="fast-small", steps=7, plot=None) == "found"
    cfg, kw = seen[0]
    assert (cfg.model, cfg.optimizer) == ("fast_cnn", "sgd") and kw["steps"] == 7


def test_clear_cache_reports_what_it_freed(tmp_path):
    cache = tmp_path / "cache"
    (cache / "store").mkdir(parents=True)
    (cache / "store" / "pixels.bin").write_bytes(b"x" * 1000)
    root, freed = imgclf.clear_cache(cache)
    assert root == cache and freed == 1000 and not cache.exists()


def test_models_lists_architectures_and_counts_timm():
    listing = imgclf.list_models("simple_cnn", limit=5)
    assert [r["name"] for r in listing.rows] == ["simple_cnn"] and listing.rows[0]["params"] > 0
    assert listing.timm_total > 100


@pytest.mark.slow
def test_module_docstring_examples_are_true(tmp_path, monkeypatch):
    """help(imgclf)'s examples, run as a doctest in an empty folder (they train on builtin:digits)."""
    monkeypatch.chdir(tmp_path)
    synth.shape_image("circle", 32, seed=1).save(tmp_path / "digit.png")
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    test = parser.get_doctest(imgclf.__doc__, {}, "imgclf", "imgclf/__init__.py", 0)
    assert len(test.examples) >= 6
    out: list[str] = []
    result = runner.run(test, out=out.append)
    assert result.failed == 0, "".join(out)
