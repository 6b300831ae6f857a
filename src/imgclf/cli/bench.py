"""`imgclf bench train` and `imgclf bench infer`: speed on this machine."""

from __future__ import annotations

import click

from .. import api
from ..inference.names import BENCH_BACKENDS
from . import render
from .options import CONTEXT, config_options, given


@click.group(context_settings=CONTEXT)
def bench() -> None:
    """Measure speed on this machine."""


def _bench_train(data, config_file, steps, warmup, as_json, **options) -> None:
    result = api.bench_train(data, config=config_file, steps=steps, warmup=warmup, **given(options))
    render.bench_train(result, as_json=as_json)


# The same options as `imgclf train` (model, preset, augmentation, batch size, precision, ...), so
# the steps timed are the steps that command would run.
bench.add_command(click.Command(
    "train",
    callback=_bench_train,
    context_settings=CONTEXT,
    help="""Images per second of the input pipeline and of training, FLOPs per image, achieved FLOP/s
    and the fraction of this device's matrix-product peak (measured in the same run), for the
    training that `imgclf train DATA` with the same options would run.""",
    params=[
        click.Argument(["data"]),
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False),
                     help="read training options from a config.yaml (flags given here override it)"),
        click.Option(["--steps"], default=20, show_default=True, help="timed steps (after warm-up)"),
        click.Option(["--warmup"], default=3, show_default=True, help="untimed steps first"),
        click.Option(["--json", "as_json"], is_flag=True, help="print the result as JSON"),
        *config_options(),
    ],
))  # fmt: skip


@bench.command("infer", context_settings=CONTEXT)
@click.argument("run")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BENCH_BACKENDS),
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
