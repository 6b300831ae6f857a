"""Load test of `imgclf serve`, for BENCHMARKS.md ("Serving"). Loopback only, bounded in time.

Per repeat: (1) the in-process throughput of the same backend on the same images, measured two
ways: the model alone on pre-fitted pixels at batch --max-batch, and `Predictor.predict` from
encoded bytes (decoding included) at the same batch size; (2) a fresh `imgclf serve RUN` (its own
empty store, --workers N) loaded by --clients concurrent clients for --seconds, one image per
request over keep-alive connections: successes, errors, p50/p99 latency and throughput. The
service's throughput must reach --min-ratio (0.7) of the in-process `predict` throughput (the
same work minus HTTP and the store) with zero errors; the ratio to the model-only figure is
printed too. The in-process figures are measured while no server runs, so the two never share
the CPU; the load generator's own CPU time is reported, since on a small machine it competes with
the server. Prints machine, versions, repeats and mean +- std, then writes JSON.

    .venv/bin/python bench/serve_load.py RUN [--backend auto] [--clients 32] [--seconds 30]
        [--repeats 3] [--workers 1] [--max-batch 32] [--out bench/results/serve_load.json]

Exit code 1 when any request failed or the mean ratio is below --min-ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

API_KEY = "bench-serve-load-key"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0, help="load duration per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="server worker processes")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--inproc-seconds", type=float, default=5.0, help="duration of each in-process measurement")
    ap.add_argument("--min-ratio", type=float, default=0.7)
    ap.add_argument("--out", default="bench/results/serve_load.json")
    args = ap.parse_args()

    import imgclf
    from imgclf.export.bench_infer import machine_info, versions

    predictor = imgclf.load(args.run, backend=args.backend)
    backend = predictor.backend  # "auto" resolved once: the server gets the same backend by name
    images, source = sample_images(Path(args.run), predictor)
    repeats = []
    for i in range(args.repeats):
        inproc = in_process(predictor, images, args.max_batch, args.inproc_seconds)
        served = serve_and_load(args, backend, images)
        served["ratio_vs_predict"] = served["throughput_rps"] / inproc["predict_images_per_s"]
        served["ratio_vs_model"] = served["throughput_rps"] / inproc["model_images_per_s"]
        repeats.append({"in_process": inproc, "served": served})
        print(f"repeat {i + 1}/{args.repeats}: {served['throughput_rps']:.1f} req/s, p99 {served['latency_ms']['p99']:.1f} ms, "
              f"{served['errors']} errors, ratio {served['ratio_vs_predict']:.2f}", file=sys.stderr)  # fmt: skip
    report = {
        "run": args.run, "backend": backend, "precision": predictor.precision, "architecture": predictor.meta.architecture,
        "img_size": predictor.preprocess.img_size, "images": source, "clients": args.clients, "seconds": args.seconds,
        "workers": args.workers, "max_batch": args.max_batch, "machine": machine_info(), "versions": versions(),
        "summary": summarize(repeats), "repeats": repeats,
    }  # fmt: skip
    print(format_report(report))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    s = report["summary"]
    ok = s["errors_total"] == 0 and s["ratio_vs_predict"]["mean"] >= args.min_ratio
    print(f"verdict: {'PASS' if ok else 'FAIL'} (errors {s['errors_total']}, throughput ratio {s['ratio_vs_predict']['mean']:.2f} "
          f"vs required {args.min_ratio})")  # fmt: skip
    sys.exit(0 if ok else 1)


def sample_images(run: Path, predictor, n: int = 64, seed: int = 0) -> tuple[list[bytes], str]:
    """Encoded test images of the run's own data, or synthetic JPEGs at twice the model's size."""
    from imgclf.data.run_images import RunImages
    from imgclf.runs import open_run

    try:
        run_images = RunImages(open_run(run), predictor.preprocess, predictor.classes)
        encoded = run_images.encoded("test", n, seed)
        if encoded:
            return encoded, f"{len(encoded)} test images of {run_images.source.uri}"
    except Exception:  # noqa: BLE001 - moved or missing data: fall back to synthetic images
        pass
    from PIL import Image

    size = 2 * predictor.preprocess.img_size
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(16):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out, f"16 synthetic {size}x{size} JPEGs"


def in_process(predictor, images: list[bytes], batch: int, seconds: float) -> dict:
    """Images per second: the model on fitted pixels, and predict() from bytes, both at ``batch``."""
    pixels = np.stack([predictor.preprocess.load(data) for data in images])
    stack = pixels[np.arange(batch) % len(pixels)]
    predictor.probabilities(stack, batch_size=batch)  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.probabilities(stack, batch_size=batch)
        n += batch
    model_rate = n / (time.perf_counter() - start)
    items = [images[i % len(images)] for i in range(max(4 * batch, 256))]
    predictor.predict(items[:batch], batch_size=batch)  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += len(predictor.predict(items, batch_size=batch))
    return {"model_images_per_s": model_rate, "predict_images_per_s": n / (time.perf_counter() - start)}


def serve_and_load(args, backend: str, images: list[bytes]) -> dict:
    with tempfile.TemporaryDirectory(prefix="imgclf-serve-load-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "imgclf", "serve", args.run, "--port", str(port), "--backend", backend,
               "--workers", str(args.workers), "--store", str(Path(tmp) / "store"), "--max-batch", str(args.max_batch),
               "--watch", "0", "--log-level", "warning"]  # fmt: skip
        env = {**os.environ, "IMGCLF_API_KEY": API_KEY}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with open(Path(tmp) / "server.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, proc, Path(tmp) / "server.log")
                asyncio.run(load(url, images, args.clients, 2.0))  # warm-up: connections, threads, allocator
                cpu0 = time.process_time()
                result = asyncio.run(load(url, images, args.clients, args.seconds))
                result["load_generator_cpu_s"] = time.process_time() - cpu0
                return result
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(60)


async def load(url: str, images: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` concurrent keep-alive clients posting one image per request until ``seconds`` pass."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http, k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/predict", content=images[i % len(images)], headers={"content-type": "application/octet-stream"})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            i += clients

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http, k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    ms = 1e3 * np.asarray(latencies or [float("nan")])
    return {
        "requests_ok": len(latencies), "errors": len(errors), "error_samples": errors[:5], "elapsed_s": elapsed,
        "throughput_rps": len(latencies) / elapsed,
        "latency_ms": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())},
    }  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"imgclf serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url + "/v1/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"imgclf serve was not ready after {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(repeats: list[dict]) -> dict:
    def stat(values) -> dict:
        v = np.asarray(values, dtype=float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}

    served = [r["served"] for r in repeats]
    return {
        "throughput_rps": stat([s["throughput_rps"] for s in served]),
        "latency_p50_ms": stat([s["latency_ms"]["p50"] for s in served]),
        "latency_p99_ms": stat([s["latency_ms"]["p99"] for s in served]),
        "in_process_predict_images_per_s": stat([r["in_process"]["predict_images_per_s"] for r in repeats]),
        "in_process_model_images_per_s": stat([r["in_process"]["model_images_per_s"] for r in repeats]),
        "ratio_vs_predict": stat([s["ratio_vs_predict"] for s in served]),
        "ratio_vs_model": stat([s["ratio_vs_model"] for s in served]),
        "load_generator_cpu_share": stat([s["load_generator_cpu_s"] / s["elapsed_s"] for s in served]),
        "errors_total": int(sum(s["errors"] for s in served)),
        "requests_total": int(sum(s["requests_ok"] for s in served)),
    }


def format_report(r: dict) -> str:
    m, v, s = r["machine"], r["versions"], r["summary"]

    def ms(key: str, digits: int = 1) -> str:
        return f"{s[key]['mean']:.{digits}f} ± {s[key]['std']:.{digits}f}"

    return "\n".join([
        f"\n## Serving: {r['architecture']} at {r['img_size']}px, {r['backend']} ({r['precision']}), {r['workers']} worker(s)",
        f"machine: {m['cpu']}, {m['cores_available']} cores ({', '.join(m['int8_and_bf16_instructions'])}); "
        + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"load: {r['clients']} concurrent clients for {r['seconds']:.0f} s over loopback, one image per request "
        f"({r['images']}); max batch {r['max_batch']}; mean ± std over {len(r['repeats'])} repeats, each a fresh server",
        "| throughput req/s | p50 ms | p99 ms | in-process predict img/s | ratio | in-process model-only img/s | ratio | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {ms('throughput_rps')} | {ms('latency_p50_ms')} | {ms('latency_p99_ms')} | {ms('in_process_predict_images_per_s')} | "
        f"{ms('ratio_vs_predict', 2)} | {ms('in_process_model_images_per_s')} | {ms('ratio_vs_model', 2)} | {s['errors_total']} |",
        f"load generator CPU: {100 * s['load_generator_cpu_share']['mean']:.0f}% of one core (it shares the machine with the server)",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
