"""Does memory grow with the dataset? Peak RSS of prepare (cold cache) + one augmented epoch.

For each dataset size N this generates N distinct 32x32 JPEGs in 10 class folders, then, in a
fresh subprocess per run (so peaks do not carry over) with its own empty cache
(IMGCLF_CACHE_DIR, deleted afterwards): prepares the data through the cache (every image is
decoded) and iterates one epoch of BatchLoader with the training augmentation (flip + 12.5% crop
padding) and normalisation. It reports, as mean and standard deviation over ``--runs``:

- peak RSS (getrusage ru_maxrss), which includes the pages of the memory-mapped store the epoch
  touched (file-backed, shared with the page cache, reclaimable: they grow with N by design);
- peak anonymous RSS (RssAnon, sampled every 5 ms) and its growth over the level right after
  imports: the process's own memory, the figure that must not grow with N beyond the per-image
  bookkeeping (paths, labels, indices, a few hundred bytes each);
- the store's size on disk, and the wall time of prepare and of the epoch.

    .venv/bin/python bench/cache_rss.py                          # N = 10000 and 50000, 3 runs each
    .venv/bin/python bench/cache_rss.py --sizes 10000 --runs 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CLASSES = 10


# ------------------------------------------------------------------------------ data


def _write_images(args: tuple[str, int, int, int]) -> None:
    import numpy as np
    from PIL import Image

    root, start, stop, size = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        # A smooth random colour field plus noise: photo-like JPEG sizes (~1-2 kB) and every image
        # distinct, which matters because the cache is keyed by content.
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        img = np.kron(coarse, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
        img = np.clip(img.astype(np.int16) + rng.integers(-20, 21, size=img.shape), 0, 255).astype(np.uint8)
        d = Path(root) / f"class_{i % CLASSES}"
        Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)


def make_dataset(root: Path, n: int, size: int = 32, workers: int | None = None) -> Path:
    for c in range(CLASSES):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    chunk = -(-n // (workers * 4))
    jobs = [(str(root), s, min(n, s + chunk), size) for s in range(0, n, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_images, jobs))
    return root


# ------------------------------------------------------------------------------ one measured run (child)


def _rss_kb() -> tuple[int, int]:
    anon = file = 0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1])
            elif line.startswith("RssFile:"):
                file = int(line.split()[1])
    return anon, file


class _PeakSampler(threading.Thread):
    """Samples RssAnon / RssFile every few ms: the kernel keeps only the peak of their sum."""

    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval, self.stop, self.anon, self.file = interval, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            anon, file = _rss_kb()
            self.anon, self.file = max(self.anon, anon), max(self.file, file)
            time.sleep(self.interval)

    def finish(self) -> tuple[int, int]:
        self.stop.set()
        self.join()
        return self.anon, self.file


def child(data: str, img_size: int, batch_size: int) -> dict:
    import torch

    from imgclf.data.augment import Augment
    from imgclf.data.cache import default_cache_dir
    from imgclf.data.dataset import prepare
    from imgclf.data.loader import BatchLoader
    from imgclf.data.preprocess import Preprocess
    from imgclf.inference.normalize import normalize

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports
    baseline_anon, _ = _rss_kb()
    sampler = _PeakSampler()
    sampler.start()
    preprocess = Preprocess(img_size)
    t0 = time.perf_counter()
    prepared = prepare(data, preprocess, val_fraction=0.0, test_fraction=0.0)
    t1 = time.perf_counter()
    split = prepared.split("train")
    loader = BatchLoader(
        split, batch_size, shuffle=True, drop_last=True, seed=0,
        augment=Augment(img_size, flip=True, crop_padding=0.125),
    )  # fmt: skip
    seen = 0
    for x, y in loader:
        normalize(x, preprocess.mean, preprocess.std)
        seen += len(y)
    t2 = time.perf_counter()
    peak_anon, peak_file = sampler.finish()
    store = sum(f.stat().st_size for f in default_cache_dir().rglob("*") if f.is_file())
    return {
        "images": len(prepared.samples),
        "epoch_images": seen,
        "prepare_seconds": t1 - t0,
        "epoch_seconds": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "import_rss_mb": baseline_kb / 1024,
        "import_anon_mb": baseline_anon / 1024,
        "peak_anon_mb": peak_anon / 1024,
        "anon_growth_mb": (peak_anon - baseline_anon) / 1024,
        "peak_file_mb": peak_file / 1024,
        "store_mb": store / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------ driver


def measure(data: Path, args) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="imgclf-bench-cache-"))
    env = {**os.environ, "IMGCLF_CACHE_DIR": str(cache)}
    cmd = [sys.executable, __file__, "--child", str(data), "--img-size", str(args.img_size), "--batch-size", str(args.batch_size)]
    try:
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall  # the whole subprocess, imports included
    return result


def machine() -> dict:
    import numpy
    import PIL
    import torch
    import torchvision

    import imgclf

    cpu = platform.processor() or platform.machine()
    mem_gb = None
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
        mem_gb = int(next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1) if mem_gb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "imgclf": getattr(imgclf, "__version__", "?"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


def summarise(runs: list[dict]) -> dict:
    out = {"images": runs[0]["images"], "store_mb": runs[0]["store_mb"]}
    for key in ("peak_rss_mb", "peak_anon_mb", "anon_growth_mb", "peak_file_mb", "import_rss_mb", "import_anon_mb", "prepare_seconds", "epoch_seconds", "wall_seconds"):
        vals = [r[key] for r in runs]
        out[key] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[10_000, 50_000],
                   help="comma-separated dataset sizes (default 10000,50000)")  # fmt: skip
    p.add_argument("--runs", type=int, default=3, help="measurements per size (default 3)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.img_size, args.batch_size)))
        return

    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"runs per size: {args.runs}; image {args.img_size}px JPEG, batch {args.batch_size}, cold cache each run")
    results = {}
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-data-") as tmp:
        for n in args.sizes:
            t0 = time.perf_counter()
            data = make_dataset(Path(tmp) / f"n{n}", n, args.img_size)
            print(f"N={n:,}: generated in {time.perf_counter() - t0:.1f} s", flush=True)
            results[n] = summarise([measure(data, args) for _ in range(args.runs)])
            shutil.rmtree(data)

    def ms(s: dict, scale: float = 1.0, fmt: str = ".0f") -> str:
        return f"{s['mean'] * scale:{fmt}}" + ("" if s["std"] is None else f" +- {s['std'] * scale:{fmt}}")

    header = (
        f"{'N':>8} {'store MB':>9} {'peak RSS MB':>14} {'peak anon MB':>14} {'anon growth MB':>15} "
        f"{'peak file MB':>14} {'prepare s':>12} {'epoch s':>12}"
    )
    print(header)
    for n, s in results.items():
        print(
            f"{n:>8,} {s['store_mb']:>9.1f} {ms(s['peak_rss_mb']):>14} {ms(s['peak_anon_mb']):>14} {ms(s['anon_growth_mb']):>15} "
            f"{ms(s['peak_file_mb']):>14} {ms(s['prepare_seconds'], fmt='.2f'):>12} {ms(s['epoch_seconds'], fmt='.2f'):>12}"
        )
    print(
        "(mean +- std when runs > 1. anon growth: peak anonymous memory minus that after imports, the part that\n"
        " must not scale with N. peak file: mapped libraries plus the store's pages, reclaimable page cache)"
    )
    print(json.dumps({"benchmark": "cache_rss", "machine": info, "runs": args.runs, "img_size": args.img_size,
                      "batch_size": args.batch_size, "results": {str(n): s for n, s in results.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
