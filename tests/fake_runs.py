"""Run directories written by hand, as fit() leaves them, for tests of what reads runs (the
registry) without training a model."""

from __future__ import annotations

import json

import yaml

from imgclf.runs import write_marker


def fake_run(root, *, epochs_done=2, planned=3, step=None, plan_total=30, stopped_early=False, checkpoint=True, **config):
    """A run directory as fit() leaves it, written by hand: marker, config, metrics, last checkpoint."""
    root.mkdir(parents=True)
    write_marker(root)
    cfg = {"data": "builtin:digits", "out": str(root), "model": "simple_cnn", "epochs": planned, "monitor": "val_accuracy", **config}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = [{"epoch": e, "step": 10 * e, "train_loss": 1.0 / e, "train_accuracy": 0.5 + e / 10, "epoch_seconds": 1.5,
              "val_loss": 1.2 / e, "val_accuracy": [0.6, 0.8, 0.7, 0.9][e - 1]} for e in range(1, epochs_done + 1)]  # fmt: skip
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if checkpoint:
        (root / "checkpoints").mkdir()
        best = max(lines, key=lambda r: r["val_accuracy"])["epoch"] if lines else 0
        meta = {"format": "imgclf-checkpoint", "epoch": epochs_done, "step": 10 * epochs_done if step is None else step,
                "plan_total": plan_total, "stopped_early": stopped_early, "best_epoch": best}  # fmt: skip
        (root / "checkpoints" / "last.json").write_text(json.dumps(meta))
    return root
