"""The feedback a retrain learns from, as an `imgclf feedback export` folder.

``--feedback`` names a feedback store (the folder `imgclf serve --store` used, or a
``postgresql://`` URL), exported afresh, or a folder an earlier `imgclf feedback export` wrote,
copied as it is (the feedback a person has already looked through, say). Either way the new run
keeps its own copy, so it can be evaluated and retrained again after the store has moved on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..serve.store import export_feedback, is_postgres_url, open_store
from ..serve.store.export import MANIFEST, MARKER, MARKER_KIND

STORE_FILE = "feedback.sqlite"  # what makes a folder an SQLite feedback store


@dataclass(frozen=True)
class FeedbackImage:
    """One row of the export's manifest: an image (by content) and the label people gave it."""

    path: str  # relative to the export folder (images/<sha256>.<ext>)
    label: str
    sha256: str  # of the image's bytes: the same image as an old sample has the same digest
    source: str  # "user" (a flag on a prediction) or "review" (a reviewer's decision)


def stage_feedback(spec: str | os.PathLike, dest: Path) -> list[FeedbackImage]:
    """Write the feedback of ``spec`` as an export under ``dest`` (which must not exist yet);
    returns its images. A store or export without any feedback is refused."""
    folder = None if is_postgres_url(spec) else Path(spec).expanduser()
    if folder is not None and is_export(folder):
        if not json.loads((folder / MARKER).read_text(encoding="utf-8")).get("complete"):
            raise UserError(f"--feedback {spec} is an export that did not finish; run `imgclf feedback export` again")
        shutil.copytree(folder, dest)
    elif folder is not None and not (folder / STORE_FILE).is_file():
        raise UserError(
            f"--feedback {spec} is neither a feedback store (no {STORE_FILE}) nor an `imgclf feedback export` folder; "
            "give the folder `imgclf serve --store` used (default RUN/feedback)"
        )
    else:
        with open_store(spec) as store:
            export_feedback(store, dest)
    images = read_export(dest)
    if not images:
        raise UserError(f"--feedback {spec} holds no feedback with a readable image: nothing to retrain on")
    return images


def is_export(folder: Path) -> bool:
    """True for a folder that `imgclf feedback export` finished writing."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("kind") == MARKER_KIND and (folder / MANIFEST).is_file()


def read_export(folder: Path) -> list[FeedbackImage]:
    """The images of an export's manifest, in its order."""
    with open(folder / MANIFEST, newline="", encoding="utf-8") as fh:
        return [FeedbackImage(r["path"], r["label"], r["image_sha256"], r.get("source") or "") for r in csv.DictReader(fh)]
