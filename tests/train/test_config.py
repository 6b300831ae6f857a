"""config.yaml and API keyword values are checked against TrainConfig's field types (issue 11):
a wrong value is a UserError naming the key, never a silent coercion or a crash later."""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from imgclf.errors import UserError
from imgclf.train.config import TrainConfig, option_help, read_yaml, resolve

FIELDS = {f.name: f for f in fields(TrainConfig)}


def load(tmp_path: Path, text: str) -> TrainConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return resolve(path, data="d", out="o").validate()


@pytest.mark.parametrize(
    "line, key",
    [
        ("epochs: 1.5", "epochs"),
        ('flip: "no"', "flip"),
        ("batch_size: 1e3", "batch_size"),
        ("val_fraction: null", "val_fraction"),
        ("epochs: true", "epochs"),  # a bool is not an int
        ("seed: '3'", "seed"),
        ("lr: [0.1]", "lr"),
        ("model: 18", "model"),
        ("weight_decay: .nan", "weight_decay"),
        ("mixup: .inf", "mixup"),
        ("schedule: exponential", "schedule"),
        ("lr: fast", "lr"),
        ("momentum: -0.5", "momentum"),
        ("rotation: -3", "rotation"),
        ("preset: fastest", "preset"),
        ("epochz: 3", "epochz"),
    ],
)
def test_a_wrong_value_names_its_key(tmp_path, line, key):
    with pytest.raises(UserError) as exc:
        load(tmp_path, line + "\n")
    text = str(exc.value)
    assert key in text or "--" + key.replace("_", "-") in text, text


@pytest.mark.parametrize(
    "line, field, value",
    [
        ("warmup_epochs: 2", "warmup_epochs", 2),  # an int is a fine float
        ("lr: auto", "lr", "auto"),
        ("lr: 1e-3", "lr", 1e-3),  # YAML 1.1 would make this the string '1e-3'
        ("weight_decay: 5e-4", "weight_decay", 5e-4),
        ("img_size: null", "img_size", None),  # optional fields accept null
        ("dropout: null", "dropout", None),
        ("flip: false", "flip", False),
        ("time: 10m", "time", "10m"),
        ("time: 600", "time", 600),  # a number of seconds
        ("schedule: onecycle", "schedule", "onecycle"),
    ],
)
def test_a_right_value_loads(tmp_path, line, field, value):
    assert getattr(load(tmp_path, line + "\n"), field) == value


def test_api_keyword_arguments_are_checked_the_same_way():
    with pytest.raises(UserError, match="epochs must be a whole number, not 1.5"):
        resolve(None, data="d", out="o", epochs=1.5)
    with pytest.raises(UserError, match="flip must be true or false"):
        resolve(None, data="d", out="o", flip="no")
    with pytest.raises(UserError, match="val_fraction"):
        resolve(None, data="d", out="o", val_fraction=None)
    with pytest.raises(TypeError, match="epochz"):
        resolve(None, data="d", out="o", epochz=3)
    cfg = resolve(None, data=Path("d"), out=Path("o"), cache_dir=Path("c"))  # paths become text
    assert (cfg.data, cfg.out, cfg.cache_dir) == ("d", "o", "c")


def test_a_preset_fills_only_what_was_not_given(tmp_path):
    cfg = resolve(None, data="d", out="o", preset="fast-small", batch_size=64)  # 64 is also the default
    assert cfg.batch_size == 64 and cfg.model == "fast_cnn"
    path = tmp_path / "c.yaml"
    path.write_text("preset: fast-small\nepochs: 3\n")
    cfg = resolve(path, data="d", out="o")
    assert cfg.epochs == 3 and cfg.optimizer == "sgd"


def test_a_written_config_reads_back_identically(tmp_path):
    from imgclf.runs import write_yaml

    # group_column "1e3": text that YAML 1.2 would read as a number must come back as text
    cfg = resolve(None, data="d", out="o", preset="fast-small", lr=1e-7, time="10m", img_size=32, group_column="1e3").validate()
    write_yaml(tmp_path / "config.yaml", cfg.to_dict())
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg


def test_bad_files_are_user_errors(tmp_path):
    for text in ("epochs: [1\n", "- a list\n", "1: 2\n", "? [a]\n: b\n"):
        with pytest.raises(UserError):
            load(tmp_path, text)
    (tmp_path / "config.yaml").write_bytes(b"model: \xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        resolve(tmp_path / "config.yaml")
    with pytest.raises(UserError, match="does not exist"):
        resolve(tmp_path / "missing.yaml")


def test_every_choice_field_lists_its_values_in_its_help():
    for f in FIELDS.values():
        for value in f.metadata.get("choices", ()):
            assert value in option_help(f)


# ------------------------------------------------------------------------------ property-based

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["auto", "none", "cosine", "10m", "1e3", "yes", "fast-small", "flip"]),
)  # fmt: skip
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))


def plausible(f) -> st.SearchStrategy:
    """Values of the field's own type (often valid), so that generated files also load."""
    if f.metadata.get("choices"):
        return st.sampled_from(f.metadata["choices"])
    kind = {bool: st.booleans(), int: st.integers(0, 40), float: st.floats(0, 1), str: st.text(max_size=8)}
    return kind.get(type(f.default), st.none() | st.integers(8, 64) | st.floats(0, 0.9))


def entry(name: str) -> st.SearchStrategy:
    return st.tuples(st.just(name), st.one_of(plausible(FIELDS[name]), plausible(FIELDS[name]), values))


known_entries = st.sampled_from(sorted(FIELDS)).flatmap(entry)
entries = st.one_of(
    known_entries,
    st.tuples(st.one_of(st.text(max_size=10), st.integers(0, 5)), values),  # keys that are not options
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.lists(entries, max_size=6).map(dict))
def test_any_yaml_mapping_loads_or_names_a_key(tmp_path, config):
    """Every generated config.yaml either gives a valid configuration or a UserError naming one of
    the keys it set; never another exception."""
    try:
        cfg = load(tmp_path, yaml.safe_dump(config, allow_unicode=True))
    except UserError as exc:
        text = str(exc)
        written = read_yaml(tmp_path / "config.yaml")  # the keys as YAML reads them back
        named = [k for k in written if str(k) in text or repr(k) in text or "--" + str(k).replace("_", "-") in text]
        assert named, f"{text!r} names none of {list(written)}"
        return
    for key, value in config.items():  # what loaded is what the file said (a preset fills only the rest)
        if key not in ("data", "out", "lr"):  # data and out are given above; lr "1e-3" becomes a number
            assert getattr(cfg, key) == value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_any_text_loads_or_is_a_user_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        resolve(path, data="d", out="o").validate()
    except UserError:
        pass


def test_the_generator_also_makes_files_that_load(tmp_path):
    """The property above must see valid files too, not only refusals: its option entries make a
    file with 4 options set that loads (half its entries are unknown keys, refused by design)."""

    def loads(config: dict) -> bool:
        try:
            load(tmp_path, yaml.safe_dump(config))
        except UserError:
            return False
        return len(set(config) - {"data", "out"}) >= 4

    # Seeded and without the example database: a fresh clone (CI) must find what a working copy found.
    found = find(st.lists(known_entries, min_size=4, max_size=6).map(dict), loads,
                 settings=settings(max_examples=2000, deadline=None, database=None), random=random.Random(0))  # fmt: skip
    assert load(tmp_path, yaml.safe_dump(found))


def test_every_preset_holds_valid_values():
    from imgclf.train.presets import PRESETS

    for name, values in PRESETS.items():
        TrainConfig.check_types(values, where=f"preset {name}")
        assert resolve(None, data="d", out="o", preset=name).validate().preset == name
