"""The Python API's `imgclf retrain` (part of :mod:`imgclf.api`, kept beside it only because
api.py has reached the 400-line limit; import it as ``imgclf.retrain``).

Like every API function it imports what it needs when called, so ``import imgclf`` stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .retrain.retrain import RetrainResult


def retrain(
    run: str | os.PathLike, *, feedback: str | os.PathLike, out: str | os.PathLike, epochs: int | None = None,
    from_scratch: bool = False, tolerance: float = 0.5, promote: str | os.PathLike | None = None,
    holdout: float = 0.2, overwrite: bool = False,
) -> RetrainResult:  # fmt: skip
    """`imgclf retrain`: train ``out`` from ``run``'s configuration on its data plus the
    ``feedback`` (a feedback store folder, a ``postgresql://`` URL or an `imgclf feedback export`
    folder), fine-tuning ``run``'s weights unless ``from_scratch``; score old and new on ``run``'s
    test split and on the feedback, and decide: promote only when test accuracy falls at most
    ``tolerance`` points and the held-out feedback (a ``holdout`` fraction never trained on) is
    answered at least as well. ``promote`` names a link moved to ``out`` atomically only then.
    Returns a :class:`~imgclf.retrain.retrain.RetrainResult`; everything is in ``out/retrain.json``.
    """
    from .retrain.retrain import retrain as _retrain

    run = getattr(run, "run_dir", run)  # the TrainResult imgclf.train returned works too
    return _retrain(
        run, feedback, out, epochs=epochs, from_scratch=from_scratch, tolerance=tolerance, promote=promote,
        holdout=holdout, overwrite=overwrite,
    )  # fmt: skip
