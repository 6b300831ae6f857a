"""``imgclf robustness``: accuracy under corruptions that model real-world shifts.

The run's evaluation split is prepared exactly as ``imgclf evaluate`` prepares it (the same
images, fitted to the model's size by the one preprocessing definition); each corruption is
applied to those fitted uint8 pixels, batch by batch, and the model predicts as it always does
(its precision and test-time augmentation). Results go to ``RUN/eval/robustness.{json,csv,png}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.run_images import RunImages
from ..errors import UserError
from ..inference.names import TTA_MODES
from ..predict import Predictor, load
from ..progress import log
from ..runs import open_run, write_csv, write_json
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt


def robustness(
    run: str | os.PathLike,
    *,
    data: str | None = None,
    split: str = "test",
    severities: Sequence[int] = SEVERITIES,
    limit: int | None = None,
    predictor: Predictor | None = None,
    seed: int = 0,
    corruptions: Sequence[str] = CORRUPTIONS,
    batch_size: int = 256,
    tta: str | None = None,
) -> dict:
    """Accuracy of ``run`` on its ``split`` under each corruption at each severity.

    Writes ``RUN/eval/robustness.json`` (returned as a dict), ``robustness.csv`` (one row per
    corruption and severity) and ``robustness.png``. ``relative_drop`` is
    (clean - corrupted) / clean accuracy. ``limit`` evaluates a random (seeded) subset of that
    many images; ``predictor`` replaces the run's own model (e.g. one loaded in fp32). ``tta``
    overrides the model's test-time augmentation (``none`` is several times faster than
    ``flip-translate``, which runs six views of every image).
    """
    severities = tuple(int(s) for s in severities)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities:
        raise UserError(f"severities must be among 1, 2, 3, not {bad or 'none'}")
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown or not corruptions:
        raise UserError(f"unknown corruption {unknown[0] if unknown else 'none'!r}; choose from {', '.join(CORRUPTIONS)}")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    if tta is not None and tta not in TTA_MODES:
        raise UserError(f"--tta {tta!r}: choose {', '.join(TTA_MODES)}")
    r = open_run(run)
    predictor = predictor or load(r.root, backend="torch")
    part = RunImages(r, predictor.preprocess, predictor.classes, data).split(split)
    rows = np.arange(len(part))
    if limit is not None and limit < len(part):
        rows = np.sort(np.random.default_rng(seed).permutation(len(part))[:limit])
    labels = part.labels[rows]
    store_rows = part.rows[rows]

    def batches(name: str | None = None, severity: int = 0) -> Iterator[torch.Tensor]:
        for b, start in enumerate(range(0, len(store_rows), batch_size)):
            px = np.ascontiguousarray(part.pixels[store_rows[start : start + batch_size]])
            if name is not None:
                # Each batch its own seed, so the draws do not repeat from batch to batch.
                px = corrupt(px, name, severity, seed=seed * 1_000_003 + b)
            yield torch.from_numpy(px)

    def accuracy(name: str | None = None, severity: int = 0) -> float:
        pred = predictor.batch_logits(batches(name, severity), tta=tta).argmax(1)
        return float(np.mean(pred == labels))

    clean = accuracy()
    log(f"robustness on {len(labels):,} {split} images: clean accuracy {clean:.4f}")
    results = []
    for name in corruptions:
        for sev in severities:
            acc = accuracy(name, sev)
            results.append({"corruption": name, "severity": sev, "accuracy": acc, "relative_drop": _drop(clean, acc)})
        log(f"  {name}: " + ", ".join(f"severity {x['severity']} {x['accuracy']:.4f}" for x in results[-len(severities):]))
    per_corruption = []
    for name in corruptions:
        mine = [x for x in results if x["corruption"] == name]
        per_corruption.append({
            "corruption": name,
            "mean_accuracy": float(np.mean([x["accuracy"] for x in mine])),
            "mean_relative_drop": float(np.mean([x["relative_drop"] for x in mine])),
        })  # fmt: skip
    worst = min(results, key=lambda x: x["accuracy"])
    report = {
        "split": split,
        "n": len(labels),
        "clean_accuracy": clean,
        "results": results,
        "per_corruption": per_corruption,
        "mean_relative_drop": float(np.mean([x["relative_drop"] for x in results])),
        "worst": {k: worst[k] for k in ("corruption", "severity", "accuracy")},
        "severities": list(severities),
        "precision": predictor.precision,
        "tta": predictor.tta if tta is None else tta,
        "seed": seed,
    }
    out = r.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "robustness.json", report)
    header = [["corruption", "severity", "accuracy", "relative_drop"], ["clean", 0, f"{clean:.6f}", "0.000000"]]
    write_csv(out / "robustness.csv", header + [
        [x["corruption"], x["severity"], f"{x['accuracy']:.6f}", f"{x['relative_drop']:.6f}"] for x in results
    ])  # fmt: skip
    robustness_png(report, out / "robustness.png")
    return report


def _drop(clean: float, corrupted: float) -> float:
    return (clean - corrupted) / clean if clean > 0 else 0.0


def robustness_png(report: dict, path: Path) -> None:
    """Accuracy against severity, one line per corruption, the clean accuracy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p["corruption"] for p in report["per_corruption"]]
    sev = report["severities"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        acc = [x["accuracy"] for x in report["results"] if x["corruption"] == name]
        ax.plot([0, *sev], [report["clean_accuracy"], *acc], marker="o", color=cmap(i % 10), label=name.replace("_", " "))
    ax.axhline(report["clean_accuracy"], color="black", linestyle="--", linewidth=1, label="clean")
    ax.set_xticks([0, *sev], ["clean", *[str(s) for s in sev]])
    ax.set_xlabel("severity")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"Accuracy under corruptions ({report['split']}, n={report['n']:,}); "
        f"mean relative drop {100 * report['mean_relative_drop']:.1f}%"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
