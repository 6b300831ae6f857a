"""Feedback export: a manifest `imgclf train` reads, with images and their metadata."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from synth import encode, shape_image

from imgclf.data.decode import decode_rgb
from imgclf.data.sources import open_source
from imgclf.errors import UserError
from imgclf.serve.store import SKIP, export_feedback, open_store
from imgclf.serve.store.export import COLUMNS, MANIFEST, MARKER

TOPK = [{"label": "circle", "probability": 0.42}, {"label": "square", "probability": 0.31}]


def image(label: str, seed: int, fmt: str = "PNG") -> bytes:
    return encode(shape_image(label, 24, seed=seed), fmt)


def filled_store(spec):
    """Three feedback records (a review decision, a user flag by id, a user image), one skip, one queued."""
    store = open_store(spec)
    reviewed = store.record_prediction(image("square", 1), model_version="m@1", topk=TOPK, unsure=True)
    skipped = store.record_prediction(image("cross", 2), model_version="m@1", topk=TOPK, unsure=True)
    store.record_prediction(image("circle", 3), model_version="m@1", topk=TOPK, unsure=True)  # stays queued
    flagged = store.record_prediction(image("triangle", 4, "JPEG"), model_version="m@1", topk=TOPK, unsure=False)
    store.decide(reviewed.id, "square", reviewer="ann", note="edge case")
    store.decide(skipped.id, SKIP, reviewer="ann")
    store.add_feedback("triangle", prediction_id=flagged.id, who="bob")
    store.add_feedback("cross", image=image("cross", 5), who="carol", note="from my phone, with, commas")
    return store


def read_manifest(out):
    with open(out / MANIFEST, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_export_is_a_manifest_the_trainer_reads(store_spec, tmp_path):
    out = tmp_path / "export"
    with filled_store(store_spec) as store:
        summary = export_feedback(store, out)
        records = {f.id: f for f in store.feedback()}
    assert summary.rows == 3 and summary.complete and summary.by_source == {"review": 1, "user": 2}
    rows = read_manifest(out)
    assert list(rows[0]) == COLUMNS
    by_label = {row["label"]: row for row in rows}
    assert sorted(by_label) == ["cross", "square", "triangle"]
    review = by_label["square"]
    assert (review["source"], review["who"], review["note"]) == ("review", "ann", "edge case")
    assert (review["predicted_label"], float(review["predicted_probability"])) == ("circle", pytest.approx(0.42))
    assert review["model_version"] == "m@1" and review["when"].endswith("+00:00")
    flag = by_label["triangle"]
    assert flag["source"] == "user" and flag["who"] == "bob" and flag["path"].endswith(".jpg")
    assert by_label["cross"]["prediction_id"] == "" and by_label["cross"]["note"] == "from my phone, with, commas"
    for row in rows:
        data = (out / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"] == records[row["feedback_id"]].image_sha256
    # What `imgclf train` would read: the manifest source, then each image decoded.
    source = open_source(out / MANIFEST)
    assert sorted(s.label for s in source.samples) == ["cross", "square", "triangle"]
    assert {"who", "when", "source", "predicted_label", "prediction_id"} <= set(source.meta_columns)
    for sample in source.samples:
        pixels = np.asarray(decode_rgb(source.read_bytes(sample.path)))
        assert pixels.shape[:2] == (24, 24)
    assert json.loads((out / MARKER).read_text())["rows"] == 3


def test_a_review_decision_outranks_user_flags_on_the_same_image(tmp_path):
    with open_store(tmp_path / "store") as store:
        p = store.record_prediction(image("square", 1), model_version="m@1", topk=TOPK, unsure=True)
        store.add_feedback("circle", prediction_id=p.id, who="bob")
        store.decide(p.id, "square", reviewer="ann")
        store.add_feedback("cross", prediction_id=p.id, who="eve")  # later, but a user's flag
        summary = export_feedback(store, tmp_path / "out")
    rows = read_manifest(tmp_path / "out")
    assert [(r["label"], r["who"]) for r in rows] == [("square", "ann")]
    assert summary.superseded == 2


def test_exporting_again_refreshes_an_earlier_export(tmp_path):
    out = tmp_path / "out"
    with open_store(tmp_path / "store") as store:
        store.add_feedback("circle", image=image("circle", 1))
        export_feedback(store, out)
        store.add_feedback("square", image=image("square", 2))
        summary = export_feedback(store, out)
    assert summary.rows == 2 and sorted(r["label"] for r in read_manifest(out)) == ["circle", "square"]


def test_a_non_empty_folder_that_is_no_export_is_refused(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with open_store(tmp_path / "store") as store:
        store.add_feedback("circle", image=image("circle", 1))
        with pytest.raises(UserError, match="not an earlier feedback export"):
            export_feedback(store, out)
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(UserError, match="is a file"):
            export_feedback(store, tmp_path / "a-file")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_file_names_never_come_from_labels(tmp_path):
    with open_store(tmp_path / "store") as store:
        store.add_feedback("../../outside", image=image("circle", 1), who="/etc/passwd")
        export_feedback(store, tmp_path / "out")
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    sha = hashlib.sha256(image("circle", 1)).hexdigest()
    assert written == sorted([MANIFEST, MARKER, f"images/{sha}.png"])
    assert not (tmp_path / "outside").exists()


def test_feedback_whose_bytes_are_no_image_is_skipped_with_a_reason(tmp_path):
    with open_store(tmp_path / "store") as store:
        bad = store.add_feedback("circle", image=b"not an image at all")
        store.add_feedback("square", image=image("square", 1))
        summary = export_feedback(store, tmp_path / "out")
    assert summary.rows == 1 and summary.skipped == [{"feedback_id": bad.id, "reason": "not an image Pillow can read"}]
