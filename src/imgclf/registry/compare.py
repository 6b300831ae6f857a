"""Several runs side by side: their configurations (the keys that differ marked), their key
metrics, and their per-epoch curves in one figure."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..runs import MARKER, atomic_write_bytes
from .scan import RunInfo, held_locks, read_run

# The numbers compared, in the order shown (RunInfo's fields).
METRICS = ("status", "epochs", "train_seconds", "best_epoch", "best_val_accuracy", "final_train_loss", "test_accuracy")
# The curves plotted, one panel each, when any run recorded them.
CURVES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


@dataclass
class ConfigRow:
    key: str
    values: list  # one per run; None where that run's config.yaml lacks the key
    differs: bool


@dataclass
class Comparison:
    """What `imgclf runs compare` shows: the runs, their configurations key by key and their metrics."""

    runs: list[RunInfo]
    config: list[ConfigRow]
    metrics: list[tuple[str, list]]
    plot: Path | None = None

    @property
    def differences(self) -> list[ConfigRow]:
        return [row for row in self.config if row.differs]

    def to_dict(self) -> dict:
        return {
            "runs": [r.to_dict() for r in self.runs],
            "config": [{"key": r.key, "values": r.values, "differs": r.differs} for r in self.config],
            "metrics": {name: values for name, values in self.metrics},
            "plot": str(self.plot) if self.plot else None,
        }


def compare_runs(paths: list[str | os.PathLike], plot: str | os.PathLike | None = None) -> Comparison:
    """Compare the runs at ``paths``; with ``plot``, also draw their curves into that PNG file."""
    if not paths:
        raise UserError("give the run directories to compare, e.g. imgclf runs compare runs/a runs/b")
    roots = [_run_root(p) for p in paths]
    held = held_locks()
    names = _short_names(roots)
    runs = [read_run(root, held=held) for root in roots]
    for run, name in zip(runs, names):
        run.name = name
    keys = list(dict.fromkeys(k for r in runs for k in r.config if k != "out"))  # out is the run's own path
    config = []
    for key in keys:
        values = [r.config.get(key) for r in runs]
        config.append(ConfigRow(key, values, len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1))
    metrics = [(name, [getattr(r, name) for r in runs]) for name in METRICS]
    result = Comparison(runs, config, metrics)
    if plot is not None:
        result.plot = plot_curves(runs, Path(plot))
    return result


def plot_curves(runs: list[RunInfo], path: Path) -> Path:
    """Each run's per-epoch curves (loss and accuracy, train and val) in one PNG image."""
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot {path}: give a file name ending in .png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [c for c in CURVES if any(c in r for run in runs for r in run.curves)]
    if not panels:
        raise UserError("none of these runs has finished an epoch yet, so there are no curves to plot")
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, panels):
        for run in runs:
            points = [(r["epoch"], r[metric]) for r in run.curves if isinstance(r.get(metric), int | float)]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=run.name)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _run_root(path: str | os.PathLike) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{path} is not a run directory (no such folder)")
    if not (root / MARKER).is_file() and not (root / "config.yaml").is_file():
        raise UserError(f"{path} is not a run directory (no config.yaml); give folders made by `imgclf train`")
    return root


def _short_names(roots: list[Path]) -> list[str]:
    """The shortest path endings that tell the runs apart (runs/a and other/a: runs/a, other/a)."""
    parts = [r.resolve().parts for r in roots]
    for n in range(1, max(len(p) for p in parts) + 1):
        names = [str(Path(*p[-n:])) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(r) for r in roots]  # the same folder given twice
