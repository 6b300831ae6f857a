"""`imgclf cache clear`: the decoded-image cache."""

from __future__ import annotations

import click

from .. import api
from . import render
from .options import CONTEXT


@click.group(context_settings=CONTEXT)
def cache() -> None:
    """The decoded-image cache (default: $IMGCLF_CACHE_DIR or ~/.cache/imgclf)."""


@cache.command("clear", context_settings=CONTEXT)
@click.option("--cache-dir", help="the cache folder to clear")
def clear(cache_dir) -> None:
    """Delete all decoded images; the next run decodes again."""
    render.cache_cleared(*api.clear_cache(cache_dir))
