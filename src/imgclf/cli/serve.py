"""`imgclf serve`, `imgclf feedback export` and `imgclf monitor`: the model in service, and the
feedback and drift that come back from it. Output is rendered here (three short reports)."""

from __future__ import annotations

import json
import sys

import click

from .. import api
from ..inference.names import BACKENDS
from .options import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8000, show_default=True)
@click.option("--backend", default="auto", show_default=True, type=click.Choice(BACKENDS),
              help="auto: the run's checked ONNX export on a CPU, else PyTorch")  # fmt: skip
@click.option("--workers", default=1, show_default=True, help="worker processes (each loads the model)")
@click.option("--store", help="feedback store: a folder (SQLite) or a postgresql:// URL  [default: RUN/feedback]")
@click.option("--api-key-file", type=click.Path(dir_okay=False),
              help="file whose first line is the API key  [default: $IMGCLF_API_KEY, else a random key, printed]")  # fmt: skip
@click.option("--protect-predict", is_flag=True, help="predict and explain need the API key too")
@click.option("--top-k", default=3, show_default=True, help="labels per image unless a request asks otherwise")
@click.option("--max-upload-mb", default=16.0, show_default=True, help="largest request body; larger gets 413")
@click.option("--max-batch", default=32, show_default=True, help="images the model runs at once (concurrent requests are batched)")
@click.option("--max-wait-ms", default=3.0, show_default=True, help="how long a request waits for others to batch with")
@click.option("--keep-images", is_flag=True, help="keep every predicted image in the store (unsure ones always are)")
@click.option("--watch", "watch_seconds", default=2.0, show_default=True,
              help="seconds between checks for a new model at RUN (0: only on reload)")  # fmt: skip
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="warning: no line per request (as for load tests)")  # fmt: skip
def serve(run, **options) -> None:
    """Serve RUN over HTTP: the page at /, reviewer page at /review, API under /v1, /metrics.

    \b
    RUN may be a `current` link to the promoted run: the server follows it (and
    POST /v1/admin/reload) to take a new model into service without downtime.
    API reference: http://HOST:PORT/docs
    """
    api.serve(run, **options)


@click.group(context_settings=CONTEXT)
def feedback() -> None:
    """Feedback collected by `imgclf serve`."""


@feedback.command("export", context_settings=CONTEXT)
@click.argument("store")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for images/ and manifest.csv")
def feedback_export(store, out) -> None:
    """Flagged and reviewed images of STORE (a folder or postgresql:// URL) as a manifest
    `imgclf train OUT/manifest.csv` reads, with who, when and the original prediction."""
    summary = api.export_feedback(store, out)
    sources = ", ".join(f"{n} {source}" for source, n in sorted(summary.by_source.items())) or "none"
    click.echo(f"wrote {summary.rows} image(s) ({sources}) to {summary.manifest}")
    if summary.superseded:
        click.echo(f"{summary.superseded} older record(s) for the same images were superseded (a reviewer's label wins)")
    for skipped in summary.skipped:
        click.echo(f"skipped feedback {skipped['feedback_id']}: {skipped['reason']}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="print the service's answer as JSON")
@click.option("--strict", is_flag=True, help="exit with code 1 when drift is flagged")
@click.option("--timeout", default=10.0, show_default=True, help="seconds to wait for the service")
def monitor(url, as_json, strict, timeout) -> None:
    """Drift of the traffic a running service sees (URL: e.g. http://127.0.0.1:8000) against the
    statistics of its training data: per statistic the KS test and PSI."""
    report = api.monitor(url, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(drift_text(report))
    if strict and report["drift"].get("drifted"):
        sys.exit(1)


def drift_text(report: dict) -> str:
    drift, info = report["drift"], report["info"]
    model = info.get("model", {})
    lines = [f"{report['url']}: {model.get('version', '?')} ({model.get('architecture', '?')}, {len(info.get('classes', []))} classes)"]
    if not drift.get("available"):
        lines.append(f"drift: unavailable ({drift.get('reason')})")
        return "\n".join(lines)
    flagged = drift.get("drifted_statistics") or []
    lines.append(f"drift: {'DRIFTED (' + ', '.join(flagged) + ')' if flagged else 'none flagged'}; window {drift.get('window')} "
                 f"images of worker {drift.get('worker')}")  # fmt: skip
    lines.append(f"{'statistic':<16}{'n':>6}{'PSI':>9}{'KS p':>11}  drifted")
    for name, s in (drift.get("statistics") or {}).items():
        psi = "-" if s.get("psi") is None else f"{s['psi']:.3f}"
        p = "-" if s.get("ks_pvalue") is None else f"{s['ks_pvalue']:.2e}"
        lines.append(f"{name:<16}{s.get('n', 0):>6}{psi:>9}{p:>11}  {'yes' if s.get('drifted') else ''}")
    return "\n".join(lines)
