"""Folder walks: symlink loops are reported, every file counts once, and any file name works."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from synth import encode, shape_image

from imgclf.data.sources import FolderSource, open_source

pytestmark = pytest.mark.timeout(60)  # before the fix, two of these walks never ended


def png(label: str = "circle", seed: int = 0) -> bytes:
    return encode(shape_image(label, 16, seed=seed), "PNG")


def dataset(root: Path, per_class: int = 2) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / label / f"{label}{i}.png").write_bytes(png("circle" if label == "cat" else "square", seed=i))
    return root


def labels(source) -> dict[str, str]:
    return {s.path: s.label for s in source.samples}


def ignored(source) -> dict[str, str]:
    return {i.path: i.reason for i in source.ignored}


# ------------------------------------------------------------------------------ symlink loops


def test_links_back_to_an_ancestor_are_reported_and_not_followed(tmp_path):
    root = dataset(tmp_path / "d")
    os.symlink("..", root / "dog" / "up")  # dog/up/dog/up/... forever
    os.symlink(".", root / "cat" / "self")
    src = open_source(root)
    assert labels(src) == {"cat/cat0.png": "cat", "cat/cat1.png": "cat", "dog/dog0.png": "dog", "dog/dog1.png": "dog"}
    reasons = ignored(src)
    assert set(reasons) == {"dog/up", "cat/self"}
    assert all("symlink loop" in r for r in reasons.values()), reasons


def test_loop_outside_the_data_folder_is_reported(tmp_path):
    root = dataset(tmp_path / "d")
    outside = tmp_path / "store"
    outside.mkdir()
    (outside / "extra.png").write_bytes(png(seed=9))
    os.symlink(outside, outside / "again")
    os.symlink(outside, root / "cat" / "more")
    src = open_source(root)
    assert labels(src)["cat/more/extra.png"] == "cat"
    assert len(src.samples) == 5
    assert "symlink loop" in ignored(src)["cat/more/again"]


# ------------------------------------------------------------------------------ counted once


def test_file_and_folder_reached_twice_count_once(tmp_path):
    root = dataset(tmp_path / "d")
    os.symlink("cat0.png", root / "cat" / "cat0_link.png")
    store = tmp_path / "store"
    store.mkdir()
    (store / "s.png").write_bytes(png(seed=7))
    os.symlink(store, root / "cat" / "shared")
    os.symlink(store, root / "dog" / "shared")
    os.symlink(store / "s.png", root / "dog" / "s_link.png")
    src = open_source(root)
    paths = [s.path for s in src.samples]
    assert len(paths) == len(set(paths)) == 5
    assert labels(src)["cat/shared/s.png"] == "cat"  # the first path in the walk's sorted order
    reasons = ignored(src)
    assert "cat/cat0.png" in reasons["cat/cat0_link.png"]
    assert "cat/shared" in reasons["dog/shared"]
    assert "cat/shared/s.png" in reasons["dog/s_link.png"]


def test_two_links_to_a_hidden_file_count_once(tmp_path):
    root = dataset(tmp_path / "d")
    (root / ".store").mkdir()
    (root / ".store" / "x.png").write_bytes(png(seed=3))
    os.symlink("../.store/x.png", root / "cat" / "x.png")
    os.symlink("../.store/x.png", root / "dog" / "x.png")
    src = open_source(root)
    assert labels(src)["cat/x.png"] == "cat" and "dog/x.png" not in labels(src)
    assert "cat/x.png" in ignored(src)["dog/x.png"]


def test_a_link_from_another_class_folder_keeps_the_real_files_label(tmp_path):
    # A link inside dog/ to cat's images must not make cat images dogs: a file inside the data
    # folder belongs to the folder it really is in, and the link is listed as ignored.
    root = dataset(tmp_path / "d")
    os.symlink("../cat/cat0.png", root / "dog" / "cat0.png")
    os.symlink("../cat", root / "dog" / "cats")
    src = open_source(root)
    assert Counter(labels(src).values()) == {"cat": 2, "dog": 2}
    assert labels(src)["cat/cat0.png"] == "cat"
    reasons = ignored(src)
    assert "cat/cat0.png" in reasons["dog/cat0.png"]
    assert "cat" in reasons["dog/cats"] and "symlink" in reasons["dog/cats"]


def test_broken_link_stays_a_sample_that_cannot_be_read(tmp_path):
    root = dataset(tmp_path / "d")
    os.symlink("missing.png", root / "cat" / "gone.png")
    src = open_source(root)
    assert labels(src)["cat/gone.png"] == "cat"
    with pytest.raises(OSError):
        src.read_bytes("cat/gone.png")


# ------------------------------------------------------------------------------ file names


def test_names_that_are_not_utf8_become_printable_paths_that_still_read(tmp_path):
    root = dataset(tmp_path / "d")
    raw = os.fsencode(root) + b"/cat/caf\xe9.png"
    with open(raw, "wb") as fh:
        fh.write(png(seed=5))
    os.mkdir(os.fsencode(root) + b"/\xff\xfe")
    with open(os.fsencode(root) + b"/\xff\xfe/x.png", "wb") as fh:
        fh.write(png(seed=6))
    src = open_source(root)
    got = labels(src)
    assert got["cat/caf\\xe9.png"] == "cat" and got["\\xff\\xfe/x.png"] == "\\xff\\xfe"
    for s in src.samples:
        s.path.encode("utf-8"), s.label.encode("utf-8")  # every name is valid text
        assert src.read_bytes(s.path)
        src.fingerprint(s.path)
    assert src.read_bytes("cat/caf\\xe9.png") == png(seed=5)
    json.dumps(src.describe(), ensure_ascii=False).encode("utf-8")


def test_escaped_name_that_collides_with_a_real_one_is_ignored(tmp_path):
    root = dataset(tmp_path / "d")
    (root / "cat" / "caf\\xe9.png").write_bytes(png(seed=1))  # a real name with a backslash
    with open(os.fsencode(root) + b"/cat/caf\xe9.png", "wb") as fh:
        fh.write(png(seed=2))
    src = FolderSource(root)
    assert src.read_bytes("cat/caf\\xe9.png") == png(seed=1)
    assert [s.path for s in src.samples].count("cat/caf\\xe9.png") == 1
    (reason,) = [i.reason for i in src.ignored if i.path == "cat/caf\\xe9.png"]
    assert "not valid UTF-8" in reason
