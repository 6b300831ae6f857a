"""The model bundle's file envelope: which folder is a bundle, and its ``model.json`` as raw JSON.

A bundle is ``model.safetensors`` + ``model.json``. This module only recognises one (the JSON
parses to an object that says it is an imgclf bundle of a version this code reads); the typed,
validated view of its contents, and loading the weights, live in :mod:`imgclf.inference.bundle`.
The envelope sits at the models layer because models code (``--pretrained RUN``) has to recognise
a bundle without depending on the inference layer above it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

FORMAT = "imgclf-model"
FORMAT_VERSION = 1


def read_bundle_meta(directory: Path) -> dict:
    """``directory/model.json`` as a dict, or a UserError when it is missing, not JSON or not a bundle."""
    path = Path(directory) / "model.json"
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{directory} holds no model.json") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a model.json file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; the bundle is damaged") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise UserError(f"{path} is not valid JSON ({why}); the bundle is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not an imgclf model bundle")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UserError(f"{path} has a format_version that is not a whole number; the bundle is damaged")
    if version > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer imgclf ({meta.get('imgclf_version')}); upgrade imgclf to load it")
    return meta
