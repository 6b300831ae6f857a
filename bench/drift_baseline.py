"""What the drift baseline adds to every training run, and what `imgclf retrain` spends finding
feedback images among the old data; for BENCHMARKS.md ("Drift baseline and retrain").

Times :func:`imgclf.train.drift_baseline.baseline_for_run` (statistics of up to 2,000 validation
images, their original sizes read from the headers, and one forward pass of the model over them)
on a prepared dataset, REPEATS times after one untimed warm-up, with an untrained model of the
given architecture (the cost does not depend on the weights). With ``--hash`` it also times the
SHA-256 of every image's bytes, the step of :func:`imgclf.retrain.plan.plan_data` that recognises
feedback images identical to old ones. Prints mean +- standard deviation with the machine, its
load and the versions.

    .venv/bin/python bench/drift_baseline.py builtin:digits
    .venv/bin/python bench/drift_baseline.py ../shared/data/cifar10-jpg.zip --limit 10000 --hash
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="builtin:digits, a folder, a zip or a manifest")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="prepare only a seeded random N of the images (0: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hash", action="store_true", help="also time hashing every image (retrain's duplicate search)")
    args = parser.parse_args()

    from imgclf.data.dataset import prepare
    from imgclf.data.preprocess import Preprocess
    from imgclf.data.sources import open_source
    from imgclf.inference.bundle import save_bundle
    from imgclf.models import create_model
    from imgclf.runs import Run
    from imgclf.train.drift_baseline import baseline_for_run

    source = open_source(args.data)
    if args.limit and args.limit < len(source.samples):
        pick = sorted(random.Random(0).sample(range(len(source.samples)), args.limit))
        source = copy.copy(source)
        source.samples = [source.samples[i] for i in pick]
    pre = Preprocess(args.img_size)
    t0 = time.perf_counter()
    data = prepare(source, pre, val_fraction=0.1, test_fraction=0.1)
    prepared = time.perf_counter() - t0
    classes = data.classes
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp))
        save_bundle(create_model(args.model, len(classes), img_size=args.img_size), run.model_dir,
                    architecture=args.model, classes=classes, preprocess=pre.to_dict())  # fmt: skip
        baseline_for_run(run, data)  # warm-up: imports, page cache
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            baseline = baseline_for_run(run, data)
            times.append(time.perf_counter() - t0)
    result = {"baseline_seconds": summary(times), "baseline_images": baseline["source"]["images"],
              "val_images": baseline["source"]["of"]}  # fmt: skip
    if args.hash:
        hashes = []
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            for s in data.samples:
                hashlib.sha256(data.source.read_bytes(s.path)).digest()
            hashes.append(time.perf_counter() - t0)
        result["hash_all_seconds"] = summary(hashes)
        result["hashed_images"] = len(data.samples)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}, torch {metadata.version('torch')}, imgclf {metadata.version('imgclf')}")  # fmt: skip
    print(f"data: {args.data}, {len(data.samples):,} images prepared in {prepared:.1f}s (first time: decoding), "
          f"{args.model} at {args.img_size}px")  # fmt: skip
    b = result["baseline_seconds"]
    print(f"drift baseline: {result['baseline_images']:,} of {result['val_images']:,} val images: "
          f"{b['mean']:.3f} +- {b['std']:.3f} s over {args.repeats} runs (min {b['min']:.3f}, max {b['max']:.3f})")  # fmt: skip
    if args.hash:
        h = result["hash_all_seconds"]
        print(f"sha256 of every image: {result['hashed_images']:,} images: {h['mean']:.2f} +- {h['std']:.2f} s")


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "runs": len(values)}  # fmt: skip


if __name__ == "__main__":
    main()
