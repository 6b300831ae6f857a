"""The data-dependent half of a run's preprocessing: the resize mode and the channel count.

``--resize auto`` and an unset ``--channels`` are decided from the headers of the training data
(:mod:`imgclf.data.resize_choice`) before anything is decoded, since both change the pixels the
decode cache stores. The decision is written back into the configuration, so config.yaml records
the mode and count the run used and ``imgclf train --config`` reproduces it without looking again.
"""

from __future__ import annotations

from dataclasses import replace

from ..data.header_scan import scan_headers
from ..data.preprocess import Preprocess, grey_stats
from ..data.resize_choice import choose_channels, choose_resize
from ..data.sources import open_source
from .config import TrainConfig


def resolve_input_choices(cfg: TrainConfig) -> tuple[str, int]:
    """(resize mode, channels) for ``cfg``: as given, or chosen from the data (stored in ``cfg``,
    with the line saying why in ``cfg.input_line``)."""
    if cfg.resize != "auto" and cfg.channels is not None:
        return cfg.resize, cfg.channels
    if not cfg.data:  # no data to look at (a resolver asked about a model alone): imgclf's defaults
        return ("crop" if cfg.resize == "auto" else cfg.resize), (3 if cfg.channels is None else cfg.channels)
    source = open_source(cfg.data)
    headers = scan_headers(source, [s.path for s in source.samples], cache_dir=cfg.cache_dir)
    said = []
    if cfg.resize == "auto":
        cfg.resize, why = choose_resize([(h.width, h.height) if h else None for h in headers])
        said.append(f"--resize {cfg.resize} ({why})")
    if cfg.channels is None:
        cfg.channels, why = choose_channels([h.grey if h else None for h in headers])
        said.append(f"--channels {cfg.channels} ({why})")
    cfg.input_line = "input: " + "; ".join(said)  # said by fit() once the data proved trainable (as the recipe line)
    return cfg.resize, cfg.channels


def fit_to_data(pre: Preprocess, cfg: TrainConfig) -> Preprocess:
    """``pre`` with ``cfg``'s resize mode and channel count (resolved from the data when left to
    it); RGB statistics become one grey channel's (their luma mix) for a grayscale model, and a
    grey source run's statistics repeat for an RGB one."""
    resize, channels = resolve_input_choices(cfg)
    mean, std = pre.mean, pre.std
    if channels == 1:
        mean, std = grey_stats(mean, std)
    elif len(mean) == 1:
        mean, std = mean * 3, std * 3
    return replace(pre, resize=resize, channels=channels, mean=mean, std=std)
