"""`imgclf models`: the architectures `imgclf train --model` accepts."""

from __future__ import annotations

import click

from .. import api
from . import render
from .options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("--filter", "filter_text", help="substring or glob of model names, e.g. resnet or 'vit_*'")
@click.option("--img-size", type=int, help="input size for the FLOPs (default: each model's native size)")
@click.option("--limit", default=50, show_default=True, help="compute statistics for at most this many models")
@click.option("--json", "as_json", is_flag=True)
def models(filter_text, img_size, limit, as_json) -> None:
    """Architectures `imgclf train --model` accepts: compact nets and timm's zoo."""
    render.models(api.list_models(filter_text, img_size=img_size, limit=limit), img_size, as_json=as_json)
