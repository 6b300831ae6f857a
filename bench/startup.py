"""CLI start-up time, for BENCHMARKS.md ("Start-up"): the target is `imgclf --help` under 1 s.

Times, each in a fresh process, RUNS times after one untimed warm-up (so the files are in the page
cache, as for a person typing commands): `imgclf --help`, `imgclf train --help`, a mistyped option
(`imgclf train x --epochz 3`, refused with exit code 2) and, for scale, `python -c "import torch"`
and a bare interpreter. For each it also records which heavy libraries the command imported (from
`python -X importtime`): the CLI must import none of torch, timm and scikit-learn to print help or
refuse an option. Prints mean +- standard deviation, min and max, with the machine, its load and
the versions, then writes everything as JSON.

    .venv/bin/python bench/startup.py                 # 20 runs each
    .venv/bin/python bench/startup.py --runs 5        # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HEAVY = ("torch", "torchvision", "timm", "sklearn", "onnxruntime", "matplotlib")
TARGET_SECONDS = 1.0  # for `imgclf --help` (issue 10)


def commands() -> dict[str, list[str]]:
    exe = Path(sys.executable).with_name("imgclf")
    imgclf = [str(exe)] if exe.exists() else [sys.executable, "-m", "imgclf"]  # the console script a person runs
    return {
        "imgclf --help": [*imgclf, "--help"],
        "imgclf train --help": [*imgclf, "train", "--help"],
        "imgclf train x --epochz 3": [*imgclf, "train", "x", "--epochz", "3"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "pass"': [sys.executable, "-c", "pass"],
    }


def time_once(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0, proc.returncode


def heavy_imports(cmd: list[str]) -> list[str]:
    """The heavy top-level packages ``cmd`` imports, read from -X importtime (Python commands only)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    stderr = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False).stderr
    found = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")}
    return sorted(found & set(HEAVY))


def summary(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version()}
    for dist in ("imgclf", "click", "torch", "timm", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1_5_15": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "versions": versions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per command (after one warm-up)")
    ap.add_argument("--out", default="bench/results/startup.json")
    args = ap.parse_args()

    report = {"machine": machine(), "target_seconds": TARGET_SECONDS, "commands": {}}
    for name, cmd in commands().items():
        time_once(cmd)  # warm-up: page cache, .pyc files
        timed = [time_once(cmd) for _ in range(args.runs)]
        seconds, codes = [t for t, _ in timed], sorted({c for _, c in timed})
        report["commands"][name] = {"argv": cmd, "seconds": summary(seconds), "exit_codes": codes, "heavy_imports": heavy_imports(cmd)}
        print(f"{name}: done", file=sys.stderr)
    report["machine"]["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    print(format_report(report))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    print(json.dumps({name: round(r["seconds"]["mean"], 4) for name, r in report["commands"].items()}))


def format_report(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"machine   {m['cpu']}, {m['cores_usable']} of {m['cores']} cores usable; load average {m['load_average_1_5_15']} "
        f"(after: {m['load_average_after']})",
        f"versions  {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        "",
        f"{'command':<28} {'mean s':>8} {'+- std':>8} {'min':>7} {'max':>7} {'runs':>5} {'exit':>5}  heavy imports",
    ]
    for name, r in report["commands"].items():
        s = r["seconds"]
        lines.append(
            f"{name:<28} {s['mean']:>8.3f} {s['std']:>8.3f} {s['min']:>7.3f} {s['max']:>7.3f} {s['runs']:>5} "
            f"{','.join(map(str, r['exit_codes'])):>5}  {', '.join(r['heavy_imports']) or 'none'}"
        )
    help_mean = report["commands"]["imgclf --help"]["seconds"]["mean"]
    verdict = "met" if help_mean < report["target_seconds"] else "NOT met"
    lines.append(f"\ntarget: `imgclf --help` under {report['target_seconds']:g} s: {verdict} ({help_mean:.3f} s mean)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
