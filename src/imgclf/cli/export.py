"""`imgclf export`: ONNX or TorchScript, checked against PyTorch."""

from __future__ import annotations

import click

from .. import api
from ..errors import UserError
from ..inference.names import EXPORT_FORMATS
from . import render
from .options import CONTEXT


@click.command("export", context_settings=CONTEXT)
@click.argument("run")
@click.option("--format", "fmt", default="onnx", show_default=True, type=click.Choice(EXPORT_FORMATS))
@click.option("--int8", is_flag=True, help="also write an int8 model (static quantization calibrated on training images)")
@click.option("--opset", type=int, help="ONNX opset version [default: the exporter's]")
@click.option("--allow-drop", type=float, help="accuracy points the int8 model may lose against fp32 [default: 1]")
@click.option("--data", help="where the run's images are now, if they moved")
@click.option("--limit", type=int, help="check on at most this many images per split (a fixed random subset)")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test"]), help="the images of the fp32 parity check")
def export(run, fmt, int8, opset, allow_drop, data, limit, split) -> None:
    """Export a trained RUN to RUN/export/ (ONNX or TorchScript), checked against PyTorch.

    \b
    Every export is compared with the PyTorch model on the run's validation images
    (export/parity.json); an fp32 export agreeing on fewer than 99.9% of them fails.
    --int8 reports the int8 model's test accuracy against fp32 and fails beyond --allow-drop.
    """
    try:
        result = api.export(run, format=fmt, int8=int8, opset=opset, allow_drop=allow_drop, data=data, limit=limit, split=split)
    except UserError as exc:
        if getattr(exc, "result", None) is not None:  # ExportCheckFailed: the export was written, show its numbers
            render.exported(exc.result)
        raise
    render.exported(result, run=run)
