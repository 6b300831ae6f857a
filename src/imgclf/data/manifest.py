"""Read a CSV or JSONL manifest's rows, refusing what is not UTF-8 text in the expected shape.

Each problem is one :class:`~imgclf.errors.DataError` sentence naming the file and the line, with
what to do: a manifest saved as Latin-1, Windows-1252 or UTF-16 (Excel's "Unicode Text"), a CSV
saved with semicolons or tabs (Excel in many European locales), a row with more fields than the
header, JSON that is not an object per line. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is
accepted. :class:`~imgclf.data.sources.ManifestSource` turns the rows into samples.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .walk import printable

REQUIRED = ("path", "label")
_SEPARATORS = ((";", "semicolon"), ("\t", "tab"))


@dataclass
class ManifestRow:
    line: int  # where the row is in the file (its last line, for a CSV row spanning lines)
    values: dict[str, object]  # column -> value as read (JSONL values keep their JSON type)


def read_manifest(path: Path) -> list[ManifestRow]:
    """The rows of ``path`` (``.csv`` or ``.jsonl``), blank JSONL lines skipped. Raises DataError."""
    text = _utf8_text(path, path.read_bytes())
    is_csv = path.suffix.lower() == ".csv"
    rows = _csv_rows(path, text) if is_csv else _jsonl_rows(path, text)
    if not rows:
        raise DataError(f"manifest {printable(str(path))} has no rows")
    if not is_csv:  # JSONL rows may differ: the columns are every key any row has
        _check_header(printable(str(path)), list(dict.fromkeys(k for row in rows for k in row.values)), "")
    return rows


def _utf8_text(path: Path, raw: bytes) -> str:
    name = printable(str(path))
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    elif raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise DataError(f"manifest {name} is UTF-32 text; save it as UTF-8")
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"manifest {name} is UTF-16 text (Excel's \"Unicode Text\"); save it as UTF-8 (\"CSV UTF-8\")")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"manifest {name} is not UTF-8 text: line {line} holds the byte 0x{raw[exc.start]:02x}, which "
            "UTF-8 cannot decode (Latin-1 or Windows-1252 text?); save the file as UTF-8"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataError(f"manifest {name}, line {line}: a NUL character (UTF-16 text or a binary file?); save it as UTF-8 text")
    return text


def _csv_rows(path: Path, text: str) -> list[ManifestRow]:
    name = printable(str(path))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        if reader.fieldnames is None:
            return []  # an empty file
        header = list(reader.fieldnames)
        _check_header(name, header, text)
        for values in reader:
            if None in values:
                raise DataError(
                    f"manifest {name}, row {reader.line_num}: {len(header) + len(values[None])} fields but "
                    f"the header names {len(header)} (a value holding a comma needs double quotes)"
                )
            rows.append(ManifestRow(reader.line_num, dict(values)))
    except csv.Error as exc:
        raise DataError(f"manifest {name}, line {reader.line_num}: not readable as CSV ({exc})") from None
    return rows


def _check_header(name: str, header: list[str], text: str) -> None:
    missing = [c for c in REQUIRED if c not in header]
    if not missing:
        return
    first_line = text.split("\n", 1)[0]
    for sep, word in _SEPARATORS:
        if all(c in [h.strip() for h in first_line.split(sep)] for c in REQUIRED):
            raise DataError(f"manifest {name} looks {word}-separated; save it with commas (columns path,label, ...)")
    raise DataError(
        f"manifest {name} lacks the column(s) {', '.join(missing)}; "
        "it needs path,label (and optionally split, group and metadata columns)"
    )


def _jsonl_rows(path: Path, text: str) -> list[ManifestRow]:
    name = printable(str(path))
    rows = []
    # Split on newlines only: str.splitlines() also splits at U+2028 and other characters that
    # JSON allows, unescaped, inside strings.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"manifest {name}, line {line_no}: not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, arrays nested 100,000 deep
            raise DataError(f"manifest {name}, line {line_no}: not usable JSON ({type(exc).__name__})") from None
        if not isinstance(values, dict):
            raise DataError(f"manifest {name}, line {line_no}: expected a JSON object")
        rows.append(ManifestRow(line_no, values))
    return rows


def text_value(value: object, column: str, where: str) -> str:
    """A path/label/split/group value as stripped text: JSON numbers and booleans are written out,
    objects and arrays refused, a missing value is empty."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        kind = "an object" if isinstance(value, dict) else "an array"
        raise DataError(f"{where}: {column} must be text or a number, not {kind}")
    text = str(value).strip()
    if "\0" in text:
        raise DataError(f"{where}: {column} contains a NUL character")
    return text
