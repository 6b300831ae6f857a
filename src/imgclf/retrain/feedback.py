"""The feedback a retrain learns from: a folder `imgclf feedback export` wrote.

    manifest.csv   path,label,source,...,image_sha256 (paths relative to the folder)
    images/        the image files, named by the SHA-256 of their bytes
    export.json    {"kind": "imgclf-feedback-export", "complete": true, ...}

Reading a feedback store is the service's business (:mod:`imgclf.serve.store`, a layer above
this one): the API exports a store into such a folder first (:mod:`imgclf.api_retrain`). The
three names below are that format's, as :mod:`imgclf.serve.store.export` writes it
(tests/retrain/test_retrain_feedback.py checks that they agree). The new run keeps its own copy of
the folder, so it can be evaluated and retrained again after the store has moved on.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MANIFEST = "manifest.csv"
MARKER = "export.json"
MARKER_KIND = "imgclf-feedback-export"


@dataclass(frozen=True)
class FeedbackImage:
    """One row of the export's manifest: an image (by content) and the label people gave it."""

    path: str  # relative to the export folder (images/<sha256>.<ext>)
    label: str
    sha256: str  # of the image's bytes: the same image as an old sample has the same digest
    source: str  # "user" (a flag on a prediction) or "review" (a reviewer's decision)


def stage_feedback(export: Path, dest: Path, shown_as: str | None = None) -> list[FeedbackImage]:
    """Copy the feedback export ``export`` to ``dest`` (which must not exist yet); returns its
    images. An unfinished export, or one without any image, is refused (``shown_as`` names the
    feedback in messages: the store it was exported from, say)."""
    name = shown_as or str(export)
    marker = _marker(export)
    if marker is None:
        raise UserError(
            f"--feedback {name} is neither a feedback store (with feedback.sqlite) nor an `imgclf feedback export` folder; "
            "give the folder `imgclf serve --store` used (default RUN/feedback)"
        )
    if not marker.get("complete"):
        raise UserError(f"--feedback {name} is an export that did not finish; run `imgclf feedback export` again")
    shutil.copytree(export, dest)
    images = read_export(dest)
    if not images:
        raise UserError(f"--feedback {name} holds no feedback with a readable image: nothing to retrain on")
    return images


def is_export(folder: Path) -> bool:
    """True for a folder that `imgclf feedback export` wrote (finished or not)."""
    return _marker(folder) is not None


def read_export(folder: Path) -> list[FeedbackImage]:
    """The images of an export's manifest, in its order."""
    with open(folder / MANIFEST, newline="", encoding="utf-8") as fh:
        return [FeedbackImage(r["path"], r["label"], r["image_sha256"], r.get("source") or "") for r in csv.DictReader(fh)]


def _marker(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(marker, dict) and marker.get("kind") == MARKER_KIND and (folder / MANIFEST).is_file()
    return marker if ok else None
