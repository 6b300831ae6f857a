"""Optuna's standard figures of a study, drawn with its matplotlib backend and saved as PNG files
in the tuning folder: optimisation history, per-epoch values (where pruning cut trials short) and
parameter importances (fANOVA, seeded, once two trials have finished)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from ..progress import log
from ..runs import atomic_write_bytes


def write_plots(study, out: Path) -> list[Path]:
    """Save the figures that the study's trials allow; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as figures

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    searched = {name for t in study.get_trials(deepcopy=False) for name in t.distributions}
    wanted = []
    if complete:
        wanted.append(("optimization_history.png", lambda: figures.plot_optimization_history(study)))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        wanted.append(("intermediate_values.png", lambda: figures.plot_intermediate_values(study)))
    if complete >= 2 and searched:
        evaluator = FanovaImportanceEvaluator(seed=0)  # the same trials give the same figure
        wanted.append(("param_importances.png", lambda: figures.plot_param_importances(study, evaluator=evaluator)))
    paths = []
    for name, draw in wanted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = draw()
            except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial scored the same
                log(f"tune: {name} not drawn ({exc})")
                continue
        fig = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(out / name, buf.getvalue())
        paths.append(out / name)
    return paths
