"""Batch prediction shared by several processes (``imgclf predict ... --nproc N`` or torchrun).

Every process lists the same inputs, predicts its own contiguous run of whole batches (so each
image meets the same batch-mates as in one process, and gets the same numbers), and writes its
part next to the output file (``.NAME.part-R-of-N.jsonl``, written atomically; on a shared folder
this works across machines too). After a barrier, rank 0 reads the parts in rank order (the
input order), writes the output and removes the parts. Predictions travel as JSON, losslessly
(file names that are not UTF-8 included), never pickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import UserError
from .launch import LaunchEnv, die_with_parent, launch, launch_env
from .predict import Prediction, Predictor
from .progress import console
from .runs import atomic_write_text


def launch_predict(run: Path, inputs: list[str], nproc: int, output: Path | None, *, top_k: int, batch_size: int,
                   limit: int | None, backend: str, only_unsure: bool) -> tuple[list[Prediction], dict]:  # fmt: skip
    """`imgclf predict` as ``nproc`` processes on this machine (:func:`imgclf.launch.launch`);
    returns (every prediction, rank 0's counts)."""
    output = check_output(output)
    flags = ["--output", os.fspath(output), "--top-k", str(top_k), "--batch-size", str(batch_size), "--backend", backend,
             *(["--limit", str(limit)] if limit else []), *(["--only-unsure"] if only_unsure else [])]  # fmt: skip
    report = launch(nproc, ["predict", *flags, "--", os.fspath(run), *inputs])
    return [prediction_from_json(p) for p in report["predictions"]], report


def share_out(output: Path | None) -> Path | None:
    """Under torchrun, join its process group (an output file is then required); else nothing."""
    if launch_env().world_size > 1:
        output = check_output(output)
        join_process_group()
    return output


def predict_items(
    predictor: Predictor, items: Sequence, output: Path | None, *, top_k: int, batch_size: int
) -> tuple[list[Prediction], bool]:
    """Predictions for ``items``, and whether they are all of them: in one process, all; under
    torchrun, all on rank 0 (merged from every rank's part) and the rank's own share elsewhere."""
    if launch_env().world_size == 1:
        return list(predictor.predict(list(items), top_k=top_k, batch_size=batch_size)), True
    return predict_sharded(predictor, items, output, top_k=top_k, batch_size=batch_size)


def join_process_group() -> LaunchEnv:
    """Join torchrun's process group (gloo: prediction needs only barriers), each rank on its own
    GPU when there are GPUs; only rank 0 logs."""
    env = launch_env()
    if not dist.is_initialized():
        die_with_parent()
        if torch.cuda.is_available():
            torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
        # Rank 0 may still be listing a large folder while the others wait.
        dist.init_process_group("gloo", timeout=timedelta(hours=2))
    if env.rank != 0:
        console.quiet = True
    return env


def shard_bounds(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of ``rank``'s inputs: a contiguous run of whole batches, as even as can be."""
    batches = -(-n // batch_size)
    first, extra = divmod(batches, world_size)
    start = rank * first + min(rank, extra)
    end = start + first + (1 if rank < extra else 0)
    return min(n, start * batch_size), min(n, end * batch_size)


def predict_sharded(predictor: Predictor, inputs: Sequence, output: Path, *, top_k: int, batch_size: int) -> tuple[list[Prediction], bool]:
    """Predict this rank's share of ``inputs`` and merge on rank 0; returns (predictions, merged):
    every input's prediction, in input order, on rank 0 (merged True), this rank's own elsewhere."""
    env = launch_env()
    start, end = shard_bounds(len(inputs), batch_size, env.rank, env.world_size)
    mine = list(predictor.iter_predict(list(inputs[start:end]), top_k=top_k, batch_size=batch_size))
    atomic_write_text(part_path(output, env.rank, env.world_size), "".join(json.dumps(prediction_to_json(p)) + "\n" for p in mine))
    dist.barrier()  # every part is written
    if env.rank != 0:
        return mine, False
    merged: list[Prediction] = []
    for rank in range(env.world_size):
        part = part_path(output, rank, env.world_size)
        merged += [prediction_from_json(json.loads(line)) for line in part.read_text(encoding="utf-8").splitlines()]
    if len(merged) != len(inputs):
        raise UserError(f"the {env.world_size} processes predicted {len(merged)} of {len(inputs)} inputs; are their input lists the same?")
    for rank in range(env.world_size):
        part_path(output, rank, env.world_size).unlink()  # the parts are in the output now
    return merged, True


def part_path(output: Path, rank: int, world_size: int) -> Path:
    return output.with_name(f".{output.name}.part-{rank:05d}-of-{world_size:05d}.jsonl")


def prediction_to_json(p: Prediction) -> dict:
    """A Prediction as JSON, keeping names exactly (``json`` escapes the surrogates that stand for
    bytes of a file name that are not UTF-8, and reads them back)."""
    return {"path": p.path, "label": p.label, "probability": p.probability, "top": p.top, "error": p.error, "unsure": p.unsure}


def prediction_from_json(d: dict) -> Prediction:
    return Prediction(d["path"], d["label"], d["probability"], [(lab, pr) for lab, pr in d["top"]], d["error"], d["unsure"])


def check_output(output: Path | None) -> Path:
    """Prediction in several processes writes a file: the parts are merged into it."""
    if output is None:
        raise UserError("prediction in several processes needs --output FILE (.csv or .json): their parts are merged into it")
    return output
