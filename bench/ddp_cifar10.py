"""Data-parallel training on the lossless CIFAR-10: N processes against one, on this machine.

Layouts share the machine's cores: on a CPU, ``--nproc 1`` runs 1 process x all cores' threads
and ``--nproc 2`` runs 2 processes x half the threads each (DDP over gloo); on a GPU machine each
process has a GPU (NCCL). For each seed and layout, in fresh processes:
`imgclf train cifar10-png.zip --preset fast-small --epochs E --val-fraction 0 --seed S [--nproc N]`,
then `imgclf evaluate`. Recorded: the time per epoch (``epoch_seconds`` in metrics.jsonl, the
first epoch apart since it includes warm-up; decoding is outside it, the decode cache being
filled once beforehand), the whole training command's wall time, and the test accuracy after E
epochs. Printed: machine, versions, runs, mean +- std per layout, then one JSON line.

    python bench/ddp_cifar10.py                       # 3 seeds x (1, 2 processes), 10 epochs
    python bench/ddp_cifar10.py --nproc 1,2,4 --epochs 10 --seeds 0,1,2
    python bench/ddp_cifar10.py --quick               # a check that it works: 2,000 images, 2 epochs, 1 seed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "cifar10-png.zip"


def machine() -> dict:
    import torch

    from imgclf.device import cpu_flags, cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "bf16": bool({"amx_bf16", "avx512_bf16"} & cpu_flags()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def subset_zip(source: Path, out: Path, train_per_class: int, test_per_class: int) -> Path:
    """The first images of each class of each split, for --quick."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        taken: dict[str, int] = {}
        for name in src.namelist():
            parts = name.split("/")
            if len(parts) != 4 or not parts[3]:
                continue
            key, limit = "/".join(parts[1:3]), train_per_class if parts[1] == "train" else test_per_class
            if taken.get(key, 0) < limit:
                taken[key] = taken.get(key, 0) + 1
                dst.writestr(name, src.read(name))
    return out


# CIFAR-10's official split has 79 groups of near-identical images across train and test, which
# imgclf refuses by default; the benchmark keeps the official split to stay comparable.
LEAKY = ["--allow-leakage"]


def run_layout(data: Path, nproc: int, seed: int, epochs: int, workdir: Path, env: dict, extra: list[str]) -> dict:
    run_dir = workdir / f"run-n{nproc}-s{seed}"
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {**env, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "imgclf", "train", str(data), "--preset", "fast-small", "--epochs", str(epochs), "--val-fraction", "0",
           "--seed", str(seed), "--out", str(run_dir), "--overwrite", "--nproc", str(nproc), *LEAKY, *extra]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    subprocess.run([sys.executable, "-m", "imgclf", "evaluate", str(run_dir), "--no-robustness", "--no-explain"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    accuracy = json.loads((run_dir / "eval" / "metrics.json").read_text())["accuracy"]
    per_epoch = [json.loads(line)["epoch_seconds"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = per_epoch[1:] or per_epoch
    return {"nproc": nproc, "threads": threads, "seed": seed, "test_accuracy": accuracy, "train_wall_seconds": round(wall, 1),
            "epoch_seconds": per_epoch, "steady_epoch_seconds": round(statistics.mean(steady), 2)}  # fmt: skip


def summary(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} +- {spread:.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    ap.add_argument("--nproc", default="1,2", help="process counts to compare, e.g. 1,2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="2,000 training images, 2 epochs, seed 0: checks the script works")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder instead of a temporary one")
    args, extra = ap.parse_known_args()  # anything else goes to `imgclf train` (e.g. --device cpu)
    if not args.zip.exists():
        sys.exit(f"{args.zip} not found: this benchmark needs the shared lossless CIFAR-10")
    nprocs, seeds, epochs = [int(n) for n in args.nproc.split(",")], [int(s) for s in args.seeds.split(",")], args.epochs
    if args.quick:
        seeds, epochs = [0], 2
    info = machine()
    print(json.dumps(info))
    with tempfile.TemporaryDirectory(prefix="imgclf-ddp-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data = subset_zip(args.zip, workdir / "cifar10-quick.zip", 200, 50) if args.quick else args.zip
        env = {**os.environ, "IMGCLF_CACHE_DIR": str(workdir / "cache")}
        # Fill the decode cache once (a few steps of the same preset), so that no layout's timing includes decoding.
        warm = [sys.executable, "-m", "imgclf", "train", str(data), "--preset", "fast-small", "--time", "1", "--val-fraction", "0",
                "--out", str(workdir / "warm-up"), "--overwrite", *LEAKY, *extra]  # fmt: skip
        subprocess.run(warm, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [run_layout(data, n, s, epochs, workdir, env, extra) for s in seeds for n in nprocs]
    print(f"\n{len(seeds)} seed(s) x {epochs} epochs, fast-small on {data.name}, {info['cpu']} ({info['cores']} cores)")
    for n in nprocs:
        mine = [r for r in rows if r["nproc"] == n]
        print(f"  {n} process(es) x {mine[0]['threads']} thread(s): epoch {summary(mine, 'steady_epoch_seconds')} s, "
              f"training {summary(mine, 'train_wall_seconds')} s, test accuracy {summary(mine, 'test_accuracy')}")  # fmt: skip
    print(json.dumps({"machine": info, "epochs": epochs, "seeds": seeds, "quick": args.quick, "runs": rows}))


if __name__ == "__main__":
    main()
