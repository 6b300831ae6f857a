"""Tuning benchmark: `imgclf tune builtin:digits` with 1 worker against 2, and the best
configuration retrained with `imgclf train --config`.

For each number of workers and each repeat (a repeat is a different --seed: another split,
other trials), in a fresh folder with a shared, already filled decoded-image cache:

    imgclf tune builtin:digits --trials 20 --workers W --img-size 16 --seed R --out ...
    imgclf train --config OUT/best.yaml --out ...          (the best trial again)

and records the wall time of the study, its complete / pruned / failed trials, the best trial's
validation accuracy and the retrained run's, which should be equal (same seed, same score). A
worker of a W-worker study trains with cores/W threads, so the retrain gets the same number
(OMP_NUM_THREADS): reductions over another number of threads may round differently.

Digits are 8x8 pixels: --img-size 16 loses nothing and costs a quarter of the default 32. The
search space is imgclf's default (lr, weight decay, batch size, model, augmentation strength,
label smoothing, epochs 3 to 10) unless --space narrows it.

    python bench/tune_digits.py                                  # 20 trials x {1, 2} workers x 2 repeats
    python bench/tune_digits.py --trials 3 --repeats 1 --space tiny   # a quick check that it runs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY_SPACE = "model: [lenet5, simple_cnn]\nepochs: {low: 1, high: 3}\n"


def machine() -> dict:
    import optuna
    import torch

    import imgclf

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,  # a busy machine skews every number
        "python": platform.python_version(),
        "imgclf": imgclf.__version__,
        "torch": torch.__version__,
        "optuna": optuna.__version__,
    }


def imgclf_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgclf", *args]


def one_study(workers: int, seed: int, args, workdir: Path, env: dict) -> dict:
    out = workdir / f"w{workers}-seed{seed}"
    extra = ["--space", str(args.space_file)] if args.space_file else []
    cmd = imgclf_cmd("tune", "builtin:digits", "--trials", str(args.trials), "--workers", str(workers), "--img-size", "16",
                     "--seed", str(seed), "--pruner", args.pruner, "--out", str(out), *extra)  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    states = [r["state"] for r in rows]
    done = [r for r in rows if r["state"] == "complete"]
    best = max(done, key=lambda r: float(r["value"])) if done else None
    result = {
        "workers": workers, "seed": seed, "seconds": round(seconds, 1), "trials": len(rows),
        "complete": states.count("complete"), "pruned": states.count("pruned"), "failed": states.count("fail"),
        "epochs_trained": sum(int(r["epochs"] or 0) for r in rows),
        "best_trial": int(best["number"]) if best else None, "best_val_accuracy": float(best["value"]) if best else None,
    }  # fmt: skip
    if best is not None:
        threads = max(1, machine_cores() // workers)
        retrain = workdir / f"retrain-w{workers}-seed{seed}"
        subprocess.run(imgclf_cmd("train", "--config", str(out / "best.yaml"), "--out", str(retrain)), check=True,
                       env={**env, "OMP_NUM_THREADS": str(threads)}, stdout=subprocess.DEVNULL)  # fmt: skip
        epochs = [json.loads(line) for line in (retrain / "metrics.jsonl").read_text().splitlines()]
        best_epoch = json.loads((retrain / "checkpoints" / "last.json").read_text())["best_epoch"]
        result["retrained_val_accuracy"] = next(e["val_accuracy"] for e in epochs if e["epoch"] == best_epoch)
        result["reproduced"] = result["retrained_val_accuracy"] == result["best_val_accuracy"]
    return result


def machine_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="studies per number of workers (seeds 0, 1, ...)")
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband"])
    parser.add_argument("--space", help="a space.yaml for every study, or 'tiny' (2 models, 1-3 epochs) for a quick check")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    info = machine()
    print(json.dumps(info), flush=True)
    with tempfile.TemporaryDirectory(prefix="tune-digits-") as tmp:
        workdir = Path(tmp)
        args.space_file = None
        if args.space == "tiny":
            args.space_file = workdir / "space.yaml"
            args.space_file.write_text(TINY_SPACE)
        elif args.space:
            args.space_file = Path(args.space).resolve()
        env = {**os.environ, "IMGCLF_CACHE_DIR": str(workdir / "cache")}
        # Fill the decoded-image cache once, untimed: every study then starts from the same state.
        subprocess.run(imgclf_cmd("train", "builtin:digits", "--img-size", "16", "--epochs", "1", "--model", "lenet5",
                                  "--out", str(workdir / "warm-up")), check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        results = []
        for seed in range(args.repeats):
            for workers in args.workers:
                result = one_study(workers, seed, args, workdir, env)
                print(json.dumps(result), flush=True)
                results.append(result)

    print(f"\n{args.trials} trials on builtin:digits at 16px, {args.pruner} pruner, {args.repeats} repeat(s); "
          f"{info['cpu']}, {info['cores']} cores, load {info['load_average']}")  # fmt: skip
    print(f"{'workers':>7}  {'seconds':>14}  {'pruned':>10}  {'failed':>7}  {'epochs':>12}  {'best val acc':>16}  reproduced")
    for workers in args.workers:
        mine = [r for r in results if r["workers"] == workers]
        print(
            f"{workers:>7}  {spread([r['seconds'] for r in mine]):>14}  {spread([r['pruned'] for r in mine]):>10}  "
            f"{spread([r['failed'] for r in mine]):>7}  {spread([r['epochs_trained'] for r in mine]):>12}  "
            f"{spread([r['best_val_accuracy'] for r in mine if r['best_val_accuracy'] is not None]):>16}  "
            f"{sum(bool(r.get('reproduced')) for r in mine)}/{len(mine)}"
        )
    if 1 in args.workers and 2 in args.workers:
        one = statistics.mean(r["seconds"] for r in results if r["workers"] == 1)
        two = statistics.mean(r["seconds"] for r in results if r["workers"] == 2)
        print(f"2 workers vs 1: {one / two:.2f}x faster (mean wall time {two:.0f}s vs {one:.0f}s)")
    if args.json:
        record = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
