"""The Python API's `imgclf retrain` (part of :mod:`imgclf.api`, beside it because api.py has
reached the 400-line limit; use it as ``imgclf.retrain``).

Like every API function it imports what it needs when called, so ``import imgclf`` stays cheap.
It is also where a feedback store is read: the retrain workflow sits below the service's layer,
so the API exports the store (:func:`imgclf.serve.store.export_feedback`) into a temporary
folder and hands retraining that export.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .retrain.retrain import RetrainResult

STORE_FILE = "feedback.sqlite"  # what makes a folder an SQLite feedback store


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
    from .retrain.feedback import is_export
    from .retrain.retrain import retrain as _retrain
    from .serve.store import export_feedback, is_postgres_url, open_store

    run = getattr(run, "run_dir", run)  # the TrainResult imgclf.train returned works too
    options = dict(epochs=epochs, from_scratch=from_scratch, tolerance=tolerance, promote=promote, holdout=holdout, overwrite=overwrite)
    folder = None if is_postgres_url(feedback) else Path(feedback).expanduser()
    if folder is not None and (is_export(folder) or not (folder / STORE_FILE).is_file()):
        return _retrain(run, folder, out, **options)  # an export (anything else is refused there, in one sentence)
    with tempfile.TemporaryDirectory(prefix="imgclf-feedback-") as tmp:
        with open_store(feedback) as store:
            export_feedback(store, Path(tmp) / "export")
        return _retrain(run, Path(tmp) / "export", out, feedback_name=str(feedback), **options)
