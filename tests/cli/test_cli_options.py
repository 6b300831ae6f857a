"""Options with a fixed set of values are click choices built from the same tuples the code checks,
and their help text lists every value (the old --schedule help omitted onecycle and step)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from imgclf.cli import cli, main
from imgclf.errors import UserError
from imgclf.inference import names
from imgclf.train.config import SCHEDULES, TrainConfig

CHOICE_FIELDS = [f for f in TrainConfig.options() if f.metadata.get("choices")]


def option(command: click.Command, name: str) -> click.Option:
    return next(p for p in command.params if p.name == name)


def test_choice_fields_are_the_expected_ones():
    names_ = {f.name for f in CHOICE_FIELDS}
    assert {"schedule", "optimizer", "freeze", "tta", "precision", "device", "monitor", "preset"} <= names_


@pytest.mark.parametrize("command", ["train", "lr-find"])
@pytest.mark.parametrize("f", CHOICE_FIELDS, ids=lambda f: f.name)
def test_train_choices_come_from_the_config(command, f):
    opt = option(cli.commands[command], f.name)
    assert isinstance(opt.type, click.Choice)
    assert tuple(opt.type.choices) == f.metadata["choices"]
    for value in f.metadata["choices"]:  # help generated from the same tuple
        assert value in opt.help
    assert set(f.metadata.get("notes", {})) <= set(f.metadata["choices"]), "a note for a value that does not exist"


def test_schedule_help_lists_every_schedule_the_code_accepts():
    result = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200)
    line = next(s for s in result.output.splitlines() if "--schedule" in s)
    for schedule in SCHEDULES:
        assert schedule in line
        TrainConfig(data="d", out="o", schedule=schedule).validate()  # and validate() accepts each


def test_a_value_outside_the_choices_is_refused_by_click_and_by_validate():
    with pytest.raises(SystemExit) as exc:
        main(["train", "d", "--out", "o", "--schedule", "exponential"])
    assert exc.value.code == 2
    with pytest.raises(UserError, match="--schedule must be cosine, linear, onecycle or step"):
        TrainConfig(data="d", out="o", schedule="exponential").validate()


def test_inference_choices_come_from_inference_names():
    assert tuple(option(cli.commands["predict"], "backend").type.choices) == names.BACKENDS
    assert tuple(option(cli.commands["robustness"], "tta").type.choices) == names.TTA_MODES
    bench = cli.commands["bench"]
    assert tuple(option(bench.commands["train"], "device").type.choices) == names.DEVICES
    assert tuple(option(bench.commands["train"], "precision").type.choices) == names.PRECISIONS
    assert tuple(option(bench.commands["infer"], "backends").type.choices) == names.BENCH_BACKENDS


def test_boolean_fields_are_flag_pairs_and_others_default_to_not_given():
    train = cli.commands["train"]
    flip = option(train, "flip")
    assert flip.secondary_opts == ["--no-flip"] and flip.default is None
    assert all(option(train, f.name).default is None for f in TrainConfig.options())


def test_lr_is_a_number_or_auto_on_the_command_line(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "builtin:digits", "--out", str(tmp_path / "r"), "--lr", "fast"])
    assert exc.value.code == 2
    assert not (tmp_path / "r").exists()
