"""Feedback as training data: image files plus a manifest that `imgclf train` reads.

    OUT/manifest.csv     path,label + who, when, source, note, the original prediction, ids
    OUT/images/<sha256>.<ext>
    OUT/export.json      what was exported (also marks OUT as an export, so it can be refreshed)

The manifest's paths are relative to it (what :class:`imgclf.data.sources.ManifestSource` wants),
and file names come from content digests, never from labels or anything else a client sent.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ...errors import UserError
from ...runs import atomic_write_bytes, write_csv, write_json
from .base import Store
from .records import SOURCE_REVIEW, Feedback, iso_time

MANIFEST = "manifest.csv"
MARKER = "export.json"
IMAGES_DIR = "images"
MARKER_KIND = "imgclf-feedback-export"
COLUMNS = [
    "path", "label", "source", "who", "when", "note", "predicted_label", "predicted_probability",
    "model_version", "prediction_id", "feedback_id", "image_sha256",
]  # fmt: skip
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


@dataclass
class ExportSummary:
    out_dir: str
    manifest: str
    rows: int = 0  # images in the manifest (one row each)
    by_source: dict[str, int] = field(default_factory=dict)
    superseded: int = 0  # feedback records outranked by another record for the same image
    skipped: list[dict] = field(default_factory=list)  # {"feedback_id", "reason"}
    complete: bool = False

    def to_dict(self) -> dict:
        return {"kind": MARKER_KIND, "time": iso_time(time.time()), **asdict(self)}


def export_feedback(store: Store, out_dir: str | os.PathLike) -> ExportSummary:
    """Write every flagged and reviewed image, with its label and metadata, under ``out_dir``.

    One row per image: when several records label the same image, a reviewer's decision outranks
    a user's flag, and among equals the latest wins (the others count as ``superseded``). Refuses
    a non-empty ``out_dir`` that is not an earlier export; an earlier export is refreshed in place
    (its manifest replaced; image files, named by content, are kept and reused).
    """
    out = Path(out_dir).expanduser()
    _check_out_dir(out)
    summary = ExportSummary(out_dir=str(out), manifest=str(out / MANIFEST))
    write_json(out / MARKER, summary.to_dict())  # first, so an interrupted export can be redone

    chosen: dict[str, Feedback] = {}
    for record in store.feedback():  # oldest first
        previous = chosen.get(record.image_sha256)
        if previous is not None:
            summary.superseded += 1
            if _rank(record) < _rank(previous):
                continue
        chosen[record.image_sha256] = record

    rows = [COLUMNS]
    for record in sorted(chosen.values(), key=lambda r: (r.time, r.id)):
        try:
            data = store.image(record.image_sha256)
        except UserError as exc:
            summary.skipped.append({"feedback_id": record.id, "reason": str(exc)})
            continue
        ext = _extension(data)
        if ext is None:
            summary.skipped.append({"feedback_id": record.id, "reason": "not an image Pillow can read"})
            continue
        rel = f"{IMAGES_DIR}/{record.image_sha256}.{ext}"
        if not (out / rel).is_file():
            atomic_write_bytes(out / rel, data)
        rows.append(_row(rel, record))
        summary.by_source[record.source] = summary.by_source.get(record.source, 0) + 1
    summary.rows = len(rows) - 1
    write_csv(out / MANIFEST, rows)
    summary.complete = True
    write_json(out / MARKER, summary.to_dict())
    return summary


def _rank(record: Feedback) -> int:
    return 1 if record.source == SOURCE_REVIEW else 0


def _row(rel: str, f: Feedback) -> list[str]:
    probability = "" if f.predicted_probability is None else f"{f.predicted_probability:.6g}"
    return [
        rel, f.label, f.source, f.who, iso_time(f.time), f.note or "", f.predicted_label or "", probability,
        f.model_version or "", f.prediction_id or "", f.id, f.image_sha256,
    ]  # fmt: skip


def _extension(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            return _EXTENSIONS.get(img.format or "")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give a folder for the feedback export")
    if not out.exists() or not any(out.iterdir()):
        return
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or marker.get("kind") != MARKER_KIND:
        raise UserError(f"{out} is not empty and is not an earlier feedback export; give a new or empty folder")
