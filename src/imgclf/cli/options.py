"""Click settings and options shared by the command modules.

The training options are generated from :class:`~imgclf.train.config.TrainConfig`'s fields, so a
default, a help text and a set of allowed values live in one place: an option with a fixed set of
values is a ``click.Choice`` of the same tuple that ``TrainConfig.validate`` checks.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import Field

import click

from ..train.config import TrainConfig, option_help

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def config_option(f: Field) -> click.Option:
    """A click option for one TrainConfig field. Its default is None (meaning "not given"), so only
    flags actually typed override a --config file or a preset."""
    flag = "--" + f.name.replace("_", "-")
    kinds = [k for k in typing.get_args(_hints()[f.name]) or (_hints()[f.name],) if k is not type(None)]
    if kinds == [bool]:
        shown = "on" if f.default else "off"
        return click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=None, help=f"{option_help(f)} [default: {shown}]")
    if any(typing.get_origin(k) is list for k in kinds):  # repeatable (--log tensorboard --log mlflow); absent: None
        return click.Option([flag, f.name], multiple=True, default=None, callback=lambda _ctx, _param, v: list(v) or None,
                            help=option_help(f))
    if f.metadata.get("choices"):
        kind = click.Choice(f.metadata["choices"])
    else:
        kind = str if str in kinds else kinds[0]  # --lr: a number or "auto"; --time: 10m or seconds
    shown = "none" if f.default is None else f.default
    return click.Option([flag, f.name], type=kind, default=None, help=f"{option_help(f)} [default: {shown}]")


def config_options(exclude: tuple[str, ...] = ()) -> list[click.Option]:
    """Options for every TrainConfig field but data, out and ``exclude``."""
    return [config_option(f) for f in TrainConfig.options() if f.name not in exclude]


def given(options: dict) -> dict:
    """The options the user actually typed (click leaves the others None)."""
    return {k: v for k, v in options.items() if v is not None}


@functools.cache
def _hints() -> dict:
    return typing.get_type_hints(TrainConfig)
