"""Training checkpoints for exact resume: safetensors for tensors, JSON for the rest, never pickle.

A checkpoint is ``checkpoints/<tag>-<step>.safetensors`` (model, optimiser state, weight
averaging, RNG states) plus ``checkpoints/<tag>.json`` (epoch, position in the epoch, scheduler,
plan, best score, generator states, and the name of its tensor file). The JSON is written last
and atomically: it is the commit point, so a crash mid-write leaves the previous checkpoint
intact and loadable. Older tensor files are deleted only after the new JSON is in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..runs import write_json

FORMAT = "imgclf-checkpoint"
VERSION = 1


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: Path,
    tag: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra_tensors: dict[str, torch.Tensor],
    meta: dict,
) -> Path:
    """Write checkpoint ``tag`` (``last`` or ``best``) atomically; returns its JSON path."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    tensors.update({k: v.detach().cpu().contiguous() for k, v in extra_tensors.items()})
    name = f"{tag}-{meta['step']:08d}.safetensors"
    tmp = directory / f".{name}.tmp{os.getpid()}"
    save_file(tensors, str(tmp))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, directory / name)
    index = directory / f"{tag}.json"
    write_json(index, {"format": FORMAT, "version": VERSION, "tensors": name, "optimizer": optim_meta, **meta})
    for old in directory.glob(f"{tag}-*.safetensors"):  # superseded: the JSON now points elsewhere
        if old.name != name:
            old.unlink(missing_ok=True)
    return index


def load_checkpoint(directory: Path, tag: str = "last") -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(tensors, optimizer state dict, meta) of checkpoint ``tag``."""
    index = directory / f"{tag}.json"
    if not index.exists():
        raise UserError(f"no {tag} checkpoint in {directory}; the run cannot be resumed")
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{index} is damaged ({exc.msg})") from None
    if meta.get("format") != FORMAT or int(meta.get("version", 0)) > VERSION:
        raise UserError(f"{index} is not a checkpoint this imgclf version can read")
    tensors = load_file(str(directory / meta["tensors"]))
    return tensors, _unflatten_optimizer(tensors, meta.pop("optimizer")), meta


def model_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
