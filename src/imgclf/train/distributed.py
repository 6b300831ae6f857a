"""Distributed data-parallel training: PyTorch DDP in processes started by torchrun, plugged into
:func:`~imgclf.train.fit.fit` through its callbacks and a few marked hooks.

How a run is shared out:

- Every process (rank) builds the same run from the same configuration and seed. Rank 0 claims
  and writes the run directory, the logs and the progress bar; the others read and compute.
- The decode cache is filled by local rank 0 of each machine while its other ranks wait at a
  barrier; they then open the same memory-mapped store (:func:`local_main_first`).
- ``--batch-size`` is the global batch. Each rank trains on its contiguous part of every global
  batch (:meth:`~imgclf.data.loader.BatchLoader.shard`), DDP averages the gradients, and batch
  norm uses the statistics of the whole global batch (``SyncBatchNorm`` on GPUs,
  :class:`~.sync_batchnorm.GlobalBatchNorm` on CPUs), so N processes train the function one
  process would with the same global batch and the learning rate needs no change with N.
- Validation runs on every rank over the whole validation split (the replicas are identical);
  rank 0's figures and its choice of the best epoch are broadcast, so no rank can disagree.
- A stop (early stopping, a tuner) and a ``--time`` plan are rank 0's, broadcast at every step
  and re-plan, so all ranks take the same number of steps (a rank left waiting in a collective
  would hang).
- Checkpoints are rank 0's and hold every rank's random states (:mod:`.distributed_state`).

NCCL on GPUs (one GPU per local rank), gloo on CPUs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from ..device import pick_device
from ..errors import UserError
from ..launch import die_with_parent, launch_env
from ..progress import console, log
from ..runs import Run, claim_run_dir
from .callbacks import Callback

if TYPE_CHECKING:
    from .config import TrainConfig

# Rank 0 may decode a large dataset into the cache while the other ranks wait at a barrier.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The process group this process belongs to (a lone process: rank 0 of 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), launch_env().local_rank)


def is_main_process() -> bool:
    """True on rank 0 (and in a lone process): the process that writes the run directory."""
    return world().is_main


def join_process_group(cfg: TrainConfig) -> World:
    """Under torchrun, join the job's process group (NCCL with one GPU per local rank, else
    gloo) and quiet this process's log unless it is rank 0; a lone process is left alone."""
    env = launch_env()
    if env.world_size == 1:
        if cfg.nproc > 1:
            raise UserError(f"--nproc {cfg.nproc}: start the processes with `imgclf train` or imgclf.train(), or with torchrun")
        return World()
    if cfg.nproc not in (1, env.local_world_size):
        raise UserError(f"--nproc {cfg.nproc} does not match the {env.local_world_size} processes torchrun started on this machine")
    cfg.nproc = env.local_world_size  # config.yaml records how the run was trained
    if not dist.is_initialized():
        die_with_parent()
        device = pick_device(cfg.device)
        if device.type == "cuda":
            if env.local_rank >= torch.cuda.device_count():
                raise UserError(f"{env.local_world_size} processes on this machine need as many GPUs; it has {torch.cuda.device_count()}")
            torch.cuda.set_device(env.local_rank)  # "cuda" now means this rank's GPU everywhere
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    if env.rank != 0:
        console.quiet = True  # only rank 0 logs
    if getattr(cfg, "cache_features", False) and getattr(cfg, "freeze", "none") != "none":
        # Cached features are a per-process store the DDP wrapper does not see; the frozen
        # layers run at every step instead (config.yaml records it).
        cfg.cache_features = False
        log("DDP: --cache-features is off with several processes; the frozen layers run at every step")
    return world()


@contextmanager
def local_main_first() -> Iterator[None]:
    """Run the block on local rank 0 first, then on the machine's other ranks: the first fills the
    decode cache, the others find every image in it. No-op in a lone process."""
    w = world()
    if w.distributed and w.local_rank != 0:
        dist.barrier()
    yield
    if w.distributed and w.local_rank == 0:
        dist.barrier()


class _ReadOnlyClaim:
    """A rank other than 0 uses the run directory without claiming it: it only reads (a resumed
    run's splits and checkpoint)."""

    def __init__(self, root: Path):
        self.run = Run(root)

    def start(self) -> None:
        pass


@contextmanager
def claim_for_this_rank(out: str, *, overwrite: bool, resume: bool) -> Iterator:
    """:func:`imgclf.runs.claim_run_dir` on rank 0; a read-only view of the folder on the others."""
    if is_main_process():
        with claim_run_dir(out, overwrite=overwrite, resume=resume) as claim:
            yield claim
    else:
        yield _ReadOnlyClaim(Path(out).expanduser())


def agree_on_batch(cfg: TrainConfig, n_train: int) -> None:
    """All ranks take rank 0's learning rate (``--lr auto`` is measured on each) and batch size,
    which must split evenly across the ranks."""
    w = world()
    if not w.distributed:
        return
    cfg.lr, batch = broadcast_json([float(cfg.lr), cfg.batch_size])
    cfg.batch_size = int(batch)
    if cfg.batch_size % w.world_size:
        raise UserError(
            f"--batch-size {cfg.batch_size} cannot be split evenly across {w.world_size} processes; use a multiple of {w.world_size}"
        )
    if n_train < w.world_size:
        raise UserError(f"{n_train} training images cannot be shared by {w.world_size} processes")


def rank_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """The callbacks of this rank: imgclf's and the caller's on rank 0 only (one metrics file, one
    log, one tracker), between the two that keep the replicas in step. Unchanged in a lone process."""
    w = world()
    if not w.distributed:
        return list(callbacks)
    return [ReplicaSync(), *(callbacks if w.is_main else ()), StopSync()]


class ReplicaSync(Callback):
    """First callback of a data-parallel run: wraps the model in DDP and shards the loader when
    training starts; after each epoch, puts every rank's record in agreement with rank 0's."""

    def on_train_start(self, ctx):
        from torch.nn.parallel import DistributedDataParallel

        w = world()
        if getattr(ctx, "features", None) is not None:
            raise UserError("cached features cannot be trained in several processes; pass --no-cache-features")
        ctx.loader.shard(w.rank, w.world_size)
        ctx.model = _sync_batchnorm(ctx.model, ctx.device)
        ddp = DistributedDataParallel(
            ctx.model,
            device_ids=[ctx.device.index if ctx.device.index is not None else torch.cuda.current_device()]
            if ctx.device.type == "cuda" else None,
            # Frozen blocks (--freeze, fast_cnn's stem bias after epoch 3) stop producing gradients
            # part-way through a run; DDP must then not wait for them. Elsewhere the search for
            # unused parameters would cost a walk of the autograd graph at every step.
            find_unused_parameters=ctx.config.freeze != "none" or hasattr(ctx.model, "set_epoch"),
        )  # fmt: skip
        ctx.step_model = torch.compile(ddp) if ctx.config.compile else ddp
        ctx.plan.share = broadcast_int  # a --time plan is rank 0's
        if ctx.state.step == 0 and not w.is_main:
            # Dropout and other draws from torch's generator differ per rank (the model itself was
            # initialised identically on every rank, and DDP starts from rank 0's copy anyway).
            torch.manual_seed(derived_seed(ctx.config.seed, w.rank))

    def on_epoch_end(self, ctx, record):
        w = world()
        # Each rank's training loss and accuracy are over its own (equal) part of every batch.
        part = torch.tensor([record["train_loss"], record["train_accuracy"]], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(part)
        record["train_loss"], record["train_accuracy"] = (part / w.world_size).tolist()
        st = ctx.state
        main = broadcast_json({
            "val": {k: v for k, v in record.items() if k.startswith("val_")},
            "is_best": ctx.is_best, "best_score": st.best_score, "best_epoch": st.best_epoch,
        })  # fmt: skip
        record.update(main["val"])
        ctx.is_best, st.best_score, st.best_epoch = main["is_best"], main["best_score"], main["best_epoch"]


class StopSync(Callback):
    """Last callback of a data-parallel run: a stop requested on rank 0 (after a step or an epoch)
    reaches every rank, so all leave the loop at the same step."""

    def on_step_end(self, ctx):
        self._share_stop(ctx)

    def on_epoch_end(self, ctx, record):
        self._share_stop(ctx)

    def _share_stop(self, ctx) -> None:
        if broadcast_int(int(ctx.stop_reason is not None)):
            ctx.stop_reason = broadcast_json(ctx.stop_reason)


def _sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model with batch norm over the global batch, its parameters and buffers unchanged (the
    optimiser, weight averaging and checkpoints keep working on them)."""
    if device.type == "cuda":
        from timm.layers import convert_sync_batchnorm  # also converts timm's BatchNormAct2d

        return convert_sync_batchnorm(model)
    from .sync_batchnorm import convert_global_batchnorm

    model, converted, left = convert_global_batchnorm(model)
    if left:
        log(f"DDP: {left} batch-norm layers with their own forward (e.g. timm's norm + activation) keep per-process statistics")
    return model


# ------------------------------------------------------------------------------------ collectives


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank."""
    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, 0)
    return int(t.item())


def broadcast_json(obj):
    """Rank 0's ``obj`` (anything JSON can hold) on every rank. JSON, not pickle: nothing a rank
    receives can run code."""
    data = json.dumps(obj).encode("utf-8") if is_main_process() else b""
    n = broadcast_int(len(data))
    buf = torch.empty(n, dtype=torch.uint8)
    if data:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    buf = buf.to(_comm_device())
    dist.broadcast(buf, 0)
    return json.loads(bytes(buf.cpu().numpy()).decode("utf-8"))


def gather_bytes(data: bytes) -> list[bytes]:
    """Every rank's ``data``, in rank order, on every rank."""
    device = _comm_device()
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64, device=device))
    longest = max(int(s.item()) for s in sizes)
    mine = torch.zeros(longest, dtype=torch.uint8, device=device)
    if data:
        mine[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    parts = [torch.empty(longest, dtype=torch.uint8, device=device) for _ in sizes]
    dist.all_gather(parts, mine)
    return [bytes(p[: int(s.item())].cpu().numpy()) for p, s in zip(parts, sizes)]


def derived_seed(*parts: int) -> int:
    """A seed for one rank's generator, derived from (seed, rank, ...) alone."""
    return int(np.random.default_rng([p % 2**63 for p in parts]).integers(2**62))
