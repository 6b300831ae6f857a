"""Which of a run's exported files may be used: only one whose check passed, for the current weights.

``imgclf export`` writes ``RUN/export/parity.json`` after checking the files it wrote (against
PyTorch, and int8 against fp32); its ``checks`` hold one entry per file name with ``passed``, the
file's own sha256 and the weights' sha256. A file is used only when its entry says ``passed`` and
both digests match what is on disk now, so an export killed before its check (the new file does
not match the old record), one that failed its check, one made from other weights, and one
replaced by hand are never used.
"""

from __future__ import annotations

import json
from pathlib import Path

from .bundle import file_digest, weights_digest

PARITY_FILE = "parity.json"
EXPORT_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def check_record(path: Path, weights_sha256: str) -> dict:
    """What a parity.json entry records about the file it checked (the exporter adds it)."""
    return {"file": path.name, "file_sha256": file_digest(path), "weights_sha256": weights_sha256}


def checked_export(run_root: Path, bundle_dir: Path, backend: str) -> tuple[Path | None, str]:
    """(path of the export for ``backend``, "") when it may be used, else (None, why not, as a sentence
    that ends by saying what to do)."""
    export_dir = run_root / "export"
    path = export_dir / EXPORT_FILES[backend]
    command = f"`imgclf export {run_root}{' --int8' if backend == 'onnx-int8' else ''}`"
    again = f"export again with {command}"
    if not path.is_file():
        return None, f"{run_root} has no {path.name} export; create it with {command}"
    try:
        parity = json.loads((export_dir / PARITY_FILE).read_text(encoding="utf-8"))
        entry = parity["checks"][path.name]
        recorded = (entry["passed"], entry["file_sha256"], entry["weights_sha256"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None, (f"{path} has no passed check on record in {PARITY_FILE} (the export was interrupted, or made by an "
                      f"older imgclf); {again}")  # fmt: skip
    passed, file_sha, weights_sha = recorded
    if weights_sha != weights_digest(bundle_dir):
        return None, f"{path} was exported from other weights than {bundle_dir}'s; {again}"
    if file_sha != file_digest(path):
        return None, f"{path} is not the file that was checked (it changed after its check, or an export was interrupted); {again}"
    if passed is not True:
        return None, f"{path} failed its export check (see {PARITY_FILE}) and must not be deployed; {again}"
    return path, ""
