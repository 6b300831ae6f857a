"""`imgclf bench train` and `imgclf bench infer`: speed on this machine."""

from __future__ import annotations

import click

from .. import api
from ..inference.names import DEVICES, PRECISIONS
from . import render
from .options import CONTEXT

# bench train runs without loss scaling, so fp16 is not offered (train/bench.py refuses it too).
BENCH_TRAIN_PRECISIONS = tuple(p for p in PRECISIONS if p != "fp16")
# The backends `bench infer` can time; tests/cli/test_options.py checks this equals
# imgclf.export.bench_infer.BACKENDS, which cannot be imported here without onnxruntime and torch.
BENCH_INFER_BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")


@click.group(context_settings=CONTEXT)
def bench() -> None:
    """Measure speed on this machine."""


@bench.command("train", context_settings=CONTEXT)
@click.argument("data")
@click.option("--model", default="simple_cnn", show_default=True)
@click.option("--img-size", type=int, help="input size (default: the model's native size)")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--steps", default=20, show_default=True, help="timed steps (after warm-up)")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(BENCH_TRAIN_PRECISIONS))
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES))
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def train(data, model, img_size, batch_size, steps, precision, device, as_json) -> None:
    """Images per second of the input pipeline and of training, FLOPs per image, achieved FLOP/s
    and the fraction of this device's matrix-product peak (measured in the same run)."""
    result = api.bench_train(data, model=model, img_size=img_size, batch_size=batch_size, steps=steps, precision=precision, device=device)
    render.bench_train(result, as_json=as_json)


@bench.command("infer", context_settings=CONTEXT)
@click.argument("run")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BENCH_INFER_BACKENDS),
              help="time only these (repeatable) [default: every one available]")
@click.option("--runs", default=50, show_default=True, help="timed calls at batch 1 and end to end")
@click.option("--batch", default=32, show_default=True, help="batch size of the throughput measurement")
@click.option("--batch-runs", default=10, show_default=True, help="timed calls at that batch size")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def infer(run, backends, runs, batch, batch_runs, as_json) -> None:
    """Prediction speed of RUN per backend (torch fp32/bf16, onnx fp32/int8): latency percentiles at
    batch 1, throughput at batch 32, and end-to-end latency from image bytes with the preprocessing share."""
    result = api.bench_infer(run, backends=tuple(backends) or None, runs=runs, batch=batch, batch_runs=batch_runs)
    render.bench_infer(result, as_json=as_json)
