"""Manifests that are not UTF-8, not comma-separated or not well formed: one sentence, never a traceback."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from synth import encode, shape_image

from imgclf.data.sources import ManifestSource, open_source
from imgclf.errors import DataError


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "img").mkdir()
    for name, label in (("a.png", "circle"), ("b.png", "square")):
        (tmp_path / "img" / name).write_bytes(encode(shape_image(label, 16), "PNG"))
    return tmp_path


def refusal(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    with pytest.raises(DataError) as info:
        open_source(folder / name)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


LATIN1_CSV = "path,label\nimg/a.png,circle\nimg/b.png,carré\n".encode("latin-1")


def test_latin1_csv_names_the_encoding_problem_and_the_line(folder):
    message = refusal(folder, "m.csv", LATIN1_CSV)
    assert "not UTF-8" in message and "line 3" in message and "0xe9" in message and "save the file as UTF-8" in message


def test_latin1_jsonl_names_the_line(folder):
    data = b'{"path": "img/a.png", "label": "circle"}\n\n' + '{"path": "img/b.png", "label": "carré"}\n'.encode("cp1252")
    assert "line 3" in refusal(folder, "m.jsonl", data)


@pytest.mark.parametrize("codec, word", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_files_are_named(folder, codec, word):
    assert word in refusal(folder, "m.csv", "path,label\nimg/a.png,circle\n".encode(codec))


def test_utf16_without_a_byte_order_mark_is_caught_by_its_nul_bytes(folder):
    assert "NUL" in refusal(folder, "m.csv", "path,label\nimg/a.png,circle\n".encode("utf-16-le"))


def test_utf8_with_and_without_bom_is_accepted(folder):
    text = "path,label\nimg/a.png,carré\nimg/b.png,square\n"
    for name, data in (("bom.csv", codecs.BOM_UTF8 + text.encode()), ("plain.csv", text.encode())):
        (folder / name).write_bytes(data)
        src = open_source(folder / name)
        assert [(s.path, s.label) for s in src.samples] == [("img/a.png", "carré"), ("img/b.png", "square")]


@pytest.mark.parametrize("sep, word", [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_or_tab_separated_csv_gets_a_hint(folder, sep, word):
    text = f"path{sep}label\nimg/a,1.png{sep}circle\nimg/b.png{sep}square\n"
    message = refusal(folder, "m.csv", text.encode())
    assert f"looks {word}-separated; save it with commas" in message


def test_row_with_more_fields_than_the_header(folder):
    message = refusal(folder, "m.csv", b"path,label\nimg/a.png,circle\nimg/b,2.png,square\n")
    assert "row 3" in message and "3 fields" in message and "double quotes" in message


def test_csv_reader_errors_are_data_errors(folder):
    huge = b"path,label\n" + b"x" * 200_000 + b".png,circle\n"
    assert "not readable as CSV" in refusal(folder, "m.csv", huge)


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"path": "img/a\\u0000.png", "label": "circle"}', "NUL"),
        ('{"path": {"a": 1}, "label": "circle"}', "path must be text or a number, not an object"),
        ('{"path": "img/a.png", "label": ["circle"]}', "label must be text or a number, not an array"),
        ('{"path": "img/a.png", "label": ' + "9" * 5000 + "}", "line 1: not usable JSON"),
        ('{"path": "img/a.png", "label": ' + "[" * 100_000 + "]" * 100_000 + "}", "line 1: not usable JSON"),
    ],
)
def test_jsonl_values_of_the_wrong_kind(folder, line, expected):
    assert expected in refusal(folder, "m.jsonl", line.encode() + b"\n")


def test_jsonl_numbers_are_labels_and_line_numbers_skip_blank_lines(folder):
    rows = [{"path": "img/a.png", "label": 3}, {"path": "img/b.png", "label": "x\u2028y"}]
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n\n", encoding="utf-8")
    src = ManifestSource(folder / "m.jsonl")
    assert [s.label for s in src.samples] == ["3", "x\u2028y"]  # U+2028 inside a string is not a line break
    (folder / "bad.jsonl").write_text('{"path": "img/a.png", "label": "a"}\n\n{"path": "", "label": "b"}\n')
    assert "row 3" in refusal(folder, "bad.jsonl", (folder / "bad.jsonl").read_bytes())
