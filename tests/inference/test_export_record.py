"""Which exported file may run: only one whose check passed, recorded for that very file and the
current weights. Interrupted, failed, stale and hand-replaced exports are refused with a reason."""

from __future__ import annotations

import json

import pytest

from imgclf.inference.bundle import file_digest, weights_digest
from imgclf.inference.export_record import check_record, checked_export


@pytest.fixture
def run(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"weights v1")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.onnx").write_bytes(b"graph v1")
    return tmp_path


def record(run, passed=True, **override):
    entry = {"check": "fp32", "passed": passed, **check_record(run / "export" / "model.onnx", weights_digest(run / "model")), **override}
    (run / "export" / "parity.json").write_text(json.dumps({"fp32": {"passed": passed}, "checks": {"model.onnx": entry}}))


def test_a_passed_check_of_this_file_and_these_weights_is_used(run):
    record(run)
    assert checked_export(run, run / "model", "onnx") == (run / "export" / "model.onnx", "")
    assert check_record(run / "export" / "model.onnx", "w")["file_sha256"] == file_digest(run / "export" / "model.onnx")


def test_no_check_on_record_is_refused(run):
    path, why = checked_export(run, run / "model", "onnx")  # no parity.json: the export never got to its check
    assert path is None and "no passed check on record" in why and "export again" in why
    (run / "export" / "parity.json").write_text('{"fp32": {"passed": true}}')  # written by an older imgclf
    assert checked_export(run, run / "model", "onnx")[0] is None


def test_a_file_rewritten_after_its_check_is_refused(run):
    record(run)
    (run / "export" / "model.onnx").write_bytes(b"graph v2, its export killed before the check")
    path, why = checked_export(run, run / "model", "onnx")
    assert path is None and "not the file that was checked" in why


def test_a_failed_check_is_refused(run):
    record(run, passed=False)
    path, why = checked_export(run, run / "model", "onnx")
    assert path is None and "failed its export check" in why


def test_other_weights_are_refused(run):
    record(run)
    (run / "model" / "model.safetensors").write_bytes(b"weights v2")
    path, why = checked_export(run, run / "model", "onnx")
    assert path is None and "other weights" in why


def test_a_missing_export_says_how_to_make_it(run):
    path, why = checked_export(run, run / "model", "onnx-int8")
    assert path is None and "--int8" in why and "has no model.int8.onnx" in why
