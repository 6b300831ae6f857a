"""Model factory, compact nets, bundles and pretrained weights.

``create_model``, ``default_img_size`` and ``is_known`` (from :mod:`.factory`) are loaded on first
use: importing this package must not import timm and torch, because ``import imgclf`` (and so
`imgclf --help`) imports it.
"""

from __future__ import annotations

import importlib

_LAZY = {"create_model": "factory", "default_img_size": "factory", "is_known": "factory"}

__all__ = list(_LAZY)


def __getattr__(name: str):  # PEP 562: `from imgclf.models import create_model` imports .factory here
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
