"""Every rank's random states in rank 0's checkpoint, and their return on resume.

A lone process checkpoints its generators as ``rng.torch``, ``rng.cuda``, ``rng.loader`` and
``mix_rng`` (:mod:`.state`); in a data-parallel run those keys hold rank 0's, and ranks 1..N-1
add ``rank<r>.rng.*`` tensors and a ``rank_mix_rng`` list, gathered from them by rank 0 at each
checkpoint. Resumed on as many processes, every rank continues with its own draws, so the run
ends as an uninterrupted one would. Resumed on a different number, the data order and the global
batches are the same (both depend only on the seed and the epoch); the ranks without a saved
state take generators derived from (seed, rank, epoch, step), so augmentation and dropout draws
differ from an uninterrupted run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..progress import log
from .distributed import derived_seed, gather_bytes, world

if TYPE_CHECKING:
    from .context import TrainContext


def _state_bytes(t: torch.Tensor | None) -> str | None:
    return None if t is None else t.cpu().numpy().tobytes().hex()


def rank_random_states(ctx: TrainContext) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) to add to rank 0's checkpoint: the other ranks' generator states. A
    collective: every rank calls it at every checkpoint. ({}, {}) in a lone process."""
    w = world()
    if not w.distributed:
        return {}, {}
    mine = {
        "torch": _state_bytes(torch.get_rng_state()),
        "cuda": _state_bytes(torch.cuda.get_rng_state(ctx.device)) if ctx.device.type == "cuda" else None,
        "loader": _state_bytes(ctx.loader.generator.get_state()) if ctx.loader.generator is not None else None,
        "mix": ctx.step.mixer.state(),
    }
    states = [json.loads(b) for b in gather_bytes(json.dumps(mine).encode("utf-8"))]
    tensors = {}
    for r, s in enumerate(states[1:], start=1):
        for name in ("torch", "cuda", "loader"):
            if s[name] is not None:
                tensors[f"rank{r}.rng.{name}"] = torch.from_numpy(np.frombuffer(bytes.fromhex(s[name]), dtype=np.uint8).copy())
    return tensors, {"world_size": w.world_size, "rank_mix_rng": [None, *(s["mix"] for s in states[1:])]}


def restore_rank_random_states(ctx: TrainContext, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """After :func:`.state.restore_state` restored rank 0's generators on every rank: give each
    other rank its own (or, resumed on another number of processes, derived ones)."""
    w, st, seed = world(), ctx.state, ctx.config.seed
    saved = int(meta.get("world_size", 1))
    if saved != w.world_size:
        if w.is_main:
            log(
                f"the checkpoint was written by {saved} process(es) and resumes on {w.world_size}: the same global batches in the "
                "same order; augmentation and dropout draws differ from an uninterrupted run"
            )
        if w.rank > 0:
            torch.manual_seed(derived_seed(seed, w.rank, st.epoch, st.step))
            if st.batch_in_epoch:
                generator = torch.Generator().manual_seed(derived_seed(seed, w.rank, st.epoch, st.step, 1))
                ctx.loader.resume_at(st.batch_in_epoch, generator.get_state())
        return
    if w.rank == 0:
        return
    key = f"rank{w.rank}.rng."
    torch.set_rng_state(tensors[key + "torch"])
    if ctx.device.type == "cuda" and key + "cuda" in tensors:
        torch.cuda.set_rng_state(tensors[key + "cuda"], ctx.device)
    if st.batch_in_epoch:
        ctx.loader.resume_at(st.batch_in_epoch, tensors[key + "loader"])
    ctx.step.mixer.load_state(meta["rank_mix_rng"][w.rank])
