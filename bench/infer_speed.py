"""Inference speed per backend, repeated, for BENCHMARKS.md ("Inference").

For each RUN: `imgclf export RUN --int8` when its exports are missing or stale, then
`imgclf bench infer RUN --json` REPEATS times, each in a fresh process (so no run inherits
another's warm caches), and a summary with the mean and standard deviation over the repeats of
every backend's batch-1 p50 latency, batch-32 throughput and end-to-end p50 latency, plus the
int8 / torch-fp32 throughput ratio measured within each repeat. Uses only the public CLI.

    .venv/bin/python bench/infer_speed.py RUN [RUN ...] [--repeats 3] [--runs 50] [--batch-runs 10]
        [--export-limit N] [--out bench/results/infer_speed.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

IMGCLF = [sys.executable, "-m", "imgclf"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_dirs", nargs="+", metavar="RUN")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=50, help="timed batch-1 and end-to-end calls per repeat")
    ap.add_argument("--batch-runs", type=int, default=10, help="timed batch-32 calls per repeat")
    ap.add_argument("--export-limit", type=int, help="images per export check (default: all)")
    ap.add_argument("--out", default="bench/results/infer_speed.json")
    args = ap.parse_args()

    report = {"runs": []}
    for run in args.runs_dirs:
        export = _ensure_export(Path(run), args.export_limit)
        repeats = []
        for i in range(args.repeats):
            cmd = [*IMGCLF, "bench", "infer", run, "--runs", str(args.runs), "--batch-runs", str(args.batch_runs), "--json"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            repeats.append(json.loads(out))
            print(f"{run}: repeat {i + 1}/{args.repeats} done", file=sys.stderr)
        summary = summarize(repeats)
        report["runs"].append({"run": run, "export": export, "summary": summary, "repeats": repeats})
        print(format_summary(run, repeats[0], summary, export, len(repeats)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


def _ensure_export(run: Path, limit: int | None) -> dict:
    """Export with --int8 unless both exports exist and match the run's weights (imgclf checks that)."""
    probe = subprocess.run(
        [*IMGCLF, "bench", "infer", str(run), "--backend", "onnx-fp32", "--backend", "onnx-int8",
         "--runs", "1", "--batch", "1", "--batch-runs", "1", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    fresh = probe.returncode == 0 and not json.loads(probe.stdout)["skipped"]
    if not fresh:
        cmd = [*IMGCLF, "export", str(run), "--int8"] + (["--limit", str(limit)] if limit else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # a failed check is reported, not fatal
        print(proc.stdout + proc.stderr, file=sys.stderr)
    parity = run / "export" / "parity.json"
    return json.loads(parity.read_text()) if parity.exists() else {}


def summarize(repeats: list[dict]) -> dict:
    out = {}
    names = [b["backend"] for b in repeats[0]["backends"]]
    for name in names:
        rows = [next(b for b in r["backends"] if b["backend"] == name) for r in repeats]

        def stat(values):
            v = np.asarray(values, dtype=float)
            return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}

        out[name] = {
            "latency_p50_ms": stat([b["latency_ms_batch1"]["p50"] for b in rows]),
            "latency_p99_ms": stat([b["latency_ms_batch1"]["p99"] for b in rows]),
            "throughput_images_per_s": stat([b["throughput_images_per_s"]["mean"] for b in rows]),
            "end_to_end_p50_ms": stat([b["end_to_end_ms"]["p50"] for b in rows]),
            "preprocess_share": stat([b["preprocess_share"] for b in rows]),
            "throughput_vs_torch_fp32": stat([b.get("throughput_vs_torch_fp32", float("nan")) for b in rows]),
        }
    return out


def format_summary(run: str, first: dict, summary: dict, export: dict, n_repeats: int) -> str:
    m, v = first["machine"], first["versions"]
    lines = [
        f"\n## {first['architecture']} at {first['img_size']}px ({run})",
        f"machine: {m['cpu']}, {m['cores_available']} cores ({', '.join(m['int8_and_bf16_instructions'])}); "
        + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"mean ± std over {n_repeats} repeats (fresh processes), each {first['runs']} timed calls at batch 1, {first['batch_runs']} at batch {first['backends'][0]['throughput_batch']}",
    ]
    if export.get("fp32"):
        f = export["fp32"]
        lines.append(f"export parity: {f['top1_agreement']:.2%} top-1 agreement on {f['images']} {f['split']} images, max |dp| {f['max_abs_prob_diff']:.1e}")
    if export.get("int8"):
        q = export["int8"]
        lines.append(f"int8: accuracy {q['accuracy_int8']:.2%} vs fp32 {q['accuracy_fp32']:.2%} on {q['vs_fp32']['images']} {q['split']} images")
    lines.append("| backend | batch-1 p50 ms | batch-1 p99 ms | batch-32 img/s | vs torch fp32 | end-to-end p50 ms | preprocessing share |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        def ms(k, d=2, s=s):
            return f"{s[k]['mean']:.{d}f} ± {s[k]['std']:.{d}f}"

        lines.append(
            f"| {name} | {ms('latency_p50_ms')} | {ms('latency_p99_ms')} | {ms('throughput_images_per_s', 1)} | "
            f"{ms('throughput_vs_torch_fp32')}x | {ms('end_to_end_p50_ms')} | {100 * s['preprocess_share']['mean']:.0f}% |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
