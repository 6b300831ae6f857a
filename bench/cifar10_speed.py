"""CIFAR-10 speed benchmark: imgclf's fast-small preset against a plain torchvision pipeline.

For each seed, in a fresh process with an empty decoded-image cache (so decoding is counted):
`imgclf train cifar10-jpg.zip --preset fast-small --val-fraction 0`, then `imgclf evaluate
--no-robustness --no-explain` (test accuracy with the preset's TTA, calibration and the unsure
threshold; the corruption sweep and Grad-CAM gallery add about 3 minutes on 2 cores and are not
part of reaching the accuracy). The wall time of both together is the time to the reported test
accuracy.

In the same run, the baseline: torchvision ImageFolder + PIL transforms + DataLoader (2 workers)
+ torchvision ResNet-18, fp32, SGD with a one-cycle schedule planned to end within the same
budget, evaluated on the test split at the end. And the input pipelines alone: images per second
of the baseline DataLoader against imgclf's cached, batched loader with the same augmentation.

    python bench/cifar10_speed.py                  # 3 seeds + baseline + pipeline (about 45 min on 2 cores)
    python bench/cifar10_speed.py --no-baseline    # just the preset (e.g. on a GPU machine)
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
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"


def machine() -> dict:
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def run_preset(zip_path: Path, seed: int, workdir: Path, extra: list[str], shared_cache: bool = False) -> dict:
    run_dir = workdir / f"run-seed{seed}"
    cache = workdir / ("cache" if shared_cache else f"cache-seed{seed}")  # own cache: decoding counts
    env = {**os.environ, "IMGCLF_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "imgclf", "train", str(zip_path), "--preset", "fast-small",
           "--val-fraction", "0", "--seed", str(seed), "--out", str(run_dir), "--overwrite",
           "--allow-leakage", *extra]  # fmt: skip  (the official split's 79 near-identical train/test groups: kept, for comparability)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    t_train = time.perf_counter() - t0
    subprocess.run([sys.executable, "-m", "imgclf", "evaluate", str(run_dir), "--no-robustness", "--no-explain"],
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    total = time.perf_counter() - t0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    epochs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        "test_accuracy": metrics["accuracy"],
        "train_seconds": round(t_train, 1),
        "total_seconds": round(total, 1),
        "epoch_seconds": [e["epoch_seconds"] for e in epochs],
    }


def baseline_loaders(folder: Path, batch_size: int = 128, workers: int = 2):
    import torch
    from torchvision import datasets, transforms

    norm = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
    test_tf = transforms.Compose([transforms.ToTensor(), norm])
    train = datasets.ImageFolder(folder / "cifar10" / "train", transform=train_tf)
    test = datasets.ImageFolder(folder / "cifar10" / "test", transform=test_tf)
    mk = lambda ds, shuffle: torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers, drop_last=shuffle, persistent_workers=False)  # noqa: E731
    return mk(train, True), mk(test, False)


def run_baseline(folder: Path, budget: float) -> dict:
    """ResNet-18 (torchvision, fp32) trained until the budget, on a time-based schedule (5% linear
    warmup, then cosine to zero at the end of the training time), evaluated at the end."""
    import math

    import torch
    import torchvision

    t0 = time.perf_counter()
    torch.manual_seed(0)
    train_loader, test_loader = baseline_loaders(folder)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    train_budget = budget * 0.9  # evaluating 10k images in fp32 on the CPU takes the rest
    steps, done = 0, False
    model.train()
    while not done:
        for x, y in train_loader:
            progress = (time.perf_counter() - t0) / train_budget
            if progress >= 1:
                done = True
                break
            factor = progress / 0.05 if progress < 0.05 else 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95))
            for group in opt.param_groups:
                group["lr"] = 0.1 * factor
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return {
        "test_accuracy": correct / total,
        "steps": steps,
        "epochs": round(steps * 128 / 50000, 2),
        "total_seconds": round(time.perf_counter() - t0, 1),
    }


def pipeline_throughput(zip_path: Path, folder: Path, cache_dir: Path, batches: int = 60, runs: int = 5) -> dict:
    """Images per second of the input pipelines alone, same augmentation (crop 4px + flip) and
    batch size, alternating imgclf and baseline ``runs`` times. imgclf's loader reads the decoded
    cache (filled once, untimed); the baseline decodes JPEGs with PIL in 2 DataLoader workers."""
    from imgclf.data.augment import Augment
    from imgclf.data.dataset import prepare
    from imgclf.data.loader import BatchLoader
    from imgclf.data.preprocess import Preprocess
    from imgclf.inference.normalize import normalize

    pre = Preprocess(32)
    data = prepare(zip_path, pre, val_fraction=0, cache_dir=cache_dir)  # decoding happens here, untimed
    loader = BatchLoader(data.split("train"), 256, shuffle=True, drop_last=True, augment=Augment(32, flip=True, crop_padding=0.125))
    train_loader, _ = baseline_loaders(folder, batch_size=256)

    def ours() -> float:
        # A whole epoch (175 batches): 60 batches take only about 0.2 s here, too short to time
        # steadily on a shared machine.
        it = iter(loader)
        next(it)
        n = len(loader) - 1
        t0 = time.perf_counter()
        for _ in range(n):
            x, _ = next(it)
            normalize(x, pre.mean, pre.std)
        return n * 256 / (time.perf_counter() - t0)

    def baseline() -> float:
        it = iter(train_loader)
        next(it)  # workers started
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        rate = batches * 256 / (time.perf_counter() - t0)
        it._shutdown_workers()  # no worker may keep decoding while imgclf's loader is timed
        return rate

    mine, base = [], []
    for _ in range(runs):
        mine.append(ours())
        base.append(baseline())
    return {
        "runs": runs,
        "imgclf_images_per_second": [round(v) for v in mine],
        "baseline_images_per_second": [round(v) for v in base],
        "imgclf_mean": round(statistics.mean(mine)),
        "baseline_mean": round(statistics.mean(base)),
        "speedup": round(statistics.mean(mine) / statistics.mean(base), 1),
    }


def summary(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {std:.4f}" if mean < 1.5 else f"{mean:.1f} ± {std:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="preset runs (none: only the baseline/pipeline)")
    ap.add_argument("--budget", type=float, default=600.0, help="wall-clock budget in seconds for the baseline")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--shared-cache", action="store_true", help="decode once for all seeds (only the first run is cold)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("extra", nargs="*", help="extra `imgclf train` flags for the preset runs (after --)")
    args = ap.parse_args()
    if not args.zip.exists():
        sys.exit(f"CIFAR-10 archive not found at {args.zip}")
    info = machine()
    print("machine:", json.dumps(info))
    results: dict = {"machine": info, "preset_runs": []}
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        work = Path(tmp)
        for seed in args.seeds:
            r = run_preset(args.zip, seed, work, args.extra, args.shared_cache)
            results["preset_runs"].append(r)
            print("preset:", json.dumps(r), flush=True)
        runs = results["preset_runs"]
        if runs:
            print(
                f"\nfast-small preset, {len(runs)} runs ({'first run cold' if args.shared_cache else 'cold cache each'}): test accuracy {summary([r['test_accuracy'] for r in runs])}, "
                f"wall seconds (decode + train + evaluate) {summary([r['total_seconds'] for r in runs])}"
            )
        if not (args.no_baseline and args.no_pipeline):
            folder = work / "extracted"
            t0 = time.perf_counter()
            with zipfile.ZipFile(args.zip) as zf:
                zf.extractall(folder)
            print(f"(extracted the archive for ImageFolder in {time.perf_counter() - t0:.0f}s; not counted)")
            if not args.no_pipeline:
                results["pipeline"] = pipeline_throughput(args.zip, folder, work / "cache-pipeline")
                print("pipeline:", json.dumps(results["pipeline"]), flush=True)
            if not args.no_baseline:
                results["baseline"] = run_baseline(folder, args.budget)
                print("baseline (torchvision ResNet-18, fp32, same budget):", json.dumps(results["baseline"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
