"""The feedback a retrain reads: `imgclf feedback export` folders, as the service writes them."""

from __future__ import annotations

import json

import pytest
from synth import encode, shape_image

import imgclf.serve.store.export as written
from imgclf.errors import UserError
from imgclf.retrain import feedback as read
from imgclf.retrain.feedback import read_export, stage_feedback
from imgclf.serve.store import export_feedback, open_store


def test_the_export_format_is_the_one_the_service_writes():
    assert (read.MANIFEST, read.MARKER, read.MARKER_KIND) == (written.MANIFEST, written.MARKER, written.MARKER_KIND)


def test_a_store_export_is_copied_with_every_image_and_label(tmp_path):
    images = {label: encode(shape_image(label, 24, seed=i), "PNG") for i, label in enumerate(("circle", "square", "cross"))}
    with open_store(tmp_path / "store") as store:
        for label, data in images.items():
            store.add_feedback(label, image=data, who="ann")
        store.add_feedback("circle", image=b"no image at all")  # skipped by the export, with its reason
        export_feedback(store, tmp_path / "export")
    staged = stage_feedback(tmp_path / "export", tmp_path / "copy")
    assert staged == read_export(tmp_path / "copy")
    assert {f.label for f in staged} == set(images) and {f.source for f in staged} == {"user"}
    for f in staged:
        assert (tmp_path / "copy" / f.path).read_bytes() == images[f.label]
        assert f.path == f"images/{f.sha256}.png"


def test_unfinished_empty_or_foreign_folders_are_refused(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="neither a feedback store"):
        stage_feedback(tmp_path / "other", tmp_path / "a", shown_as="runs/x/feedback")
    with open_store(tmp_path / "store") as store:
        export_feedback(store, tmp_path / "empty")
    with pytest.raises(UserError, match="holds no feedback"):
        stage_feedback(tmp_path / "empty", tmp_path / "b")
    marker = json.loads((tmp_path / "empty" / read.MARKER).read_text())
    (tmp_path / "empty" / read.MARKER).write_text(json.dumps({**marker, "complete": False}))
    with pytest.raises(UserError, match="did not finish"):
        stage_feedback(tmp_path / "empty", tmp_path / "c")
