"""Drift monitoring: do the images (and the model's confidence) served now look like the validation data?

The run stores a baseline (:func:`imgclf.data.image_stats.compute_baseline`) of per-image input
statistics and prediction confidence. :class:`DriftMonitor` keeps a rolling window of the same
values from live traffic and compares each statistic with its baseline by two standard measures:

- the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) against the baseline's
  reference sample: is the difference more than chance?
- the population stability index over the baseline's quantile bins: is it large enough to matter?

A statistic is flagged only when BOTH hold, and only once the window holds ``min_window`` values:

    drifted = n >= min_window (50) and ks_pvalue < ks_alpha (0.001) and psi > psi_threshold (0.2)

Why both: PSI alone is noisy on small windows (under no drift, n * PSI is roughly chi-squared with
bins - 1 = 9 degrees of freedom, so PSI > 0.2 at n = 50 happens about a third of the time), and KS
alone flags differences too small to matter once windows are large. PSI > 0.2 is the customary
"significant shift"; ks_alpha = 0.001 keeps the chance that any of the 11 statistics raises a
false alarm on one check under about 1% (Bonferroni: 11 x 0.001). The overall flag is set when
any statistic is flagged.

Each process keeps its own window (with several worker processes, each reports on the traffic it
saw); the monitor is thread-safe.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Mapping, Sequence

import numpy as np

from ..data.image_stats import BASELINE_FORMAT, BASELINE_VERSION, CONFIDENCE, batch_image_stats, bin_fractions
from ..errors import UserError

DEFAULT_WINDOW = 500
MIN_WINDOW = 50
KS_ALPHA = 0.001
PSI_THRESHOLD = 0.2
PSI_FLOOR = 1e-4  # a bin's fraction is floored here so an empty bin does not make the PSI infinite


class DriftMonitor:
    """Rolling windows of input statistics and confidence, scored against a baseline."""

    def __init__(
        self,
        baseline: Mapping,
        window: int = DEFAULT_WINDOW,
        *,
        min_window: int = MIN_WINDOW,
        ks_alpha: float = KS_ALPHA,
        psi_threshold: float = PSI_THRESHOLD,
    ):
        self._reference = _check_baseline(baseline)
        if window < 1 or min_window < 1:
            raise UserError("the drift window and minimum window must be at least 1")
        self.window = int(window)
        self.min_window = min(int(min_window), self.window)
        self.ks_alpha = float(ks_alpha)
        self.psi_threshold = float(psi_threshold)
        self._values = {name: deque(maxlen=self.window) for name in self._reference}
        self._lock = threading.Lock()

    @property
    def statistics(self) -> list[str]:
        return list(self._reference)

    def observe(self, stats: Mapping[str, float | Sequence[float]] | None = None, confidences=None) -> None:
        """Add one image's statistics (floats) or a batch's (sequences), and/or their confidences.

        Names the baseline lacks are ignored, so a newer service can feed an older baseline.
        """
        new: dict[str, np.ndarray] = {}
        for name, values in (stats or {}).items():
            if name in self._values:
                new[name] = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if confidences is not None and CONFIDENCE in self._values:
            new[CONFIDENCE] = np.atleast_1d(np.asarray(confidences, dtype=np.float64))
        with self._lock:
            for name, values in new.items():
                self._values[name].extend(float(v) for v in values if math.isfinite(v))

    def observe_images(self, images, sizes=None, confidences=None) -> None:
        """Compute the statistics of decoded images (see :func:`batch_image_stats`) and add them."""
        self.observe(batch_image_stats(images, sizes), confidences)

    def reset(self) -> None:
        """Empty the windows (e.g. when a new model and its baseline are taken into service)."""
        with self._lock:
            for values in self._values.values():
                values.clear()

    def scores(self) -> dict:
        """Per statistic: ``n``, ``ks_statistic``, ``ks_pvalue``, ``psi`` and ``drifted``; plus the
        overall ``drifted`` flag, the names of the flagged statistics and the thresholds used.

        Scores are None (and ``drifted`` False) while a window holds fewer than ``min_window`` values.
        """
        from scipy.stats import ks_2samp

        with self._lock:
            windows = {name: np.array(values, dtype=np.float64) for name, values in self._values.items()}
        per_stat = {}
        for name, current in windows.items():
            ref = self._reference[name]
            entry = {"n": int(current.size), "ks_statistic": None, "ks_pvalue": None, "psi": None, "drifted": False}
            if current.size >= self.min_window:
                ks = ks_2samp(current, ref["sample"])
                psi = population_stability_index(ref["bin_fractions"], bin_fractions(current, ref["bin_edges"]))
                entry.update(ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), psi=psi)
                entry["drifted"] = bool(ks.pvalue < self.ks_alpha and psi > self.psi_threshold)
            per_stat[name] = entry
        flagged = [name for name, entry in per_stat.items() if entry["drifted"]]
        return {
            "drifted": bool(flagged),
            "drifted_statistics": flagged,
            "window": self.window,
            "thresholds": {"min_window": self.min_window, "ks_alpha": self.ks_alpha, "psi": self.psi_threshold},
            "statistics": per_stat,
        }


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), fractions floored at PSI_FLOOR."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _check_baseline(baseline: Mapping) -> dict[str, dict]:
    """The baseline's per-statistic references as arrays, or a UserError naming what is wrong."""
    if not isinstance(baseline, Mapping) or baseline.get("format") != BASELINE_FORMAT:
        raise UserError("the drift baseline is not one imgclf wrote (no 'format': 'imgclf-drift-baseline')")
    if int(baseline.get("version", 0)) > BASELINE_VERSION:
        raise UserError(
            f"the drift baseline has version {baseline.get('version')}, newer than this imgclf reads "
            f"({BASELINE_VERSION}); upgrade imgclf"
        )
    reference = {}
    for name, entry in (baseline.get("statistics") or {}).items():
        try:
            sample = np.asarray(entry["sample"], dtype=np.float64)
            edges = np.asarray(entry["bin_edges"], dtype=np.float64)
            fractions = np.asarray(entry["bin_fractions"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"the drift baseline's entry for {name!r} lacks sample, bin_edges or bin_fractions") from None
        if sample.size == 0 or fractions.size != edges.size + 1:
            raise UserError(f"the drift baseline's entry for {name!r} is malformed (empty sample or bins that do not match)")
        reference[str(name)] = {"sample": sample, "bin_edges": edges, "bin_fractions": fractions}
    if not reference:
        raise UserError("the drift baseline holds no statistics")
    return reference
