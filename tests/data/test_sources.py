"""open_source reads folders, zip archives, manifests and built-ins, and infers the layout."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from synth import encode, make_folder, make_zip, shape_image

from imgclf.data.decode import decode_rgb
from imgclf.data.sources import (
    ArchiveLimits,
    BuiltinSource,
    FolderSource,
    ManifestSource,
    ZipSource,
    open_source,
)
from imgclf.errors import DataError, UserError


def by_path(source):
    return {s.path: s for s in source.samples}


def image_bytes(label: str = "circle", seed: int = 0) -> bytes:
    return encode(shape_image(label, 16, seed=seed), "PNG")


# ------------------------------------------------------------------------------ folders


def test_folder_per_class(tmp_path):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=3)
    src = open_source(root)
    assert isinstance(src, FolderSource)
    assert len(src.samples) == 6
    assert Counter(s.label for s in src.samples) == {"circle": 3, "square": 3}
    assert all(s.split is None for s in src.samples)
    assert not src.has_predefined_splits
    s = by_path(src)["square/square_002.png"]
    assert s.label == "square"
    assert src.read_bytes(s.path) == (root / s.path).read_bytes()


def test_folder_with_train_valid_test(tmp_path):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2, splits=("train", "valid", "test"))
    src = open_source(root)
    assert src.has_predefined_splits
    assert Counter(s.split for s in src.samples) == {"train": 4, "val": 4, "test": 4}
    s = by_path(src)["valid/circle/circle_001.png"]
    assert (s.label, s.split) == ("circle", "val")
    assert {s.label for s in src.samples} == {"circle", "square"}  # split names are not classes


def test_wrapper_folder_is_looked_through(tmp_path):
    make_folder(tmp_path / "root" / "wrap", classes=("circle", "square"), per_class=2, splits=("train", "test"))
    src = open_source(tmp_path / "root")
    assert {s.label for s in src.samples} == {"circle", "square"}
    assert Counter(s.split for s in src.samples) == {"train": 4, "test": 4}
    assert "wrap/train/circle/circle_000.png" in by_path(src)  # paths stay relative to the root given


def test_wrapper_folder_per_class(tmp_path):
    make_folder(tmp_path / "root" / "photos", classes=("circle", "square"), per_class=2)
    src = open_source(tmp_path / "root")
    assert Counter(s.label for s in src.samples) == {"circle": 2, "square": 2}
    assert all(s.split is None for s in src.samples)


def test_non_image_and_loose_files_are_listed_as_ignored(tmp_path):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2)
    (root / "circle" / "notes.txt").write_text("hello")
    (root / "labels.csv").write_text("a,b\n")
    (root / "loose.png").write_bytes(image_bytes())
    src = open_source(root)
    ignored = {i.path: i.reason for i in src.ignored}
    assert set(ignored) == {"circle/notes.txt", "labels.csv", "loose.png"}
    assert "extension" in ignored["circle/notes.txt"]
    assert "class folder" in ignored["loose.png"]
    assert len(src.samples) == 4


def test_hidden_files_are_skipped_silently(tmp_path):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2)
    (root / ".DS_Store").write_bytes(b"\0\0")
    (root / "circle" / "._circle_000.png").write_bytes(b"resource fork")
    (root / ".thumbnails" / "square").mkdir(parents=True)
    (root / ".thumbnails" / "square" / "t.png").write_bytes(image_bytes())
    (root / "__MACOSX" / "circle").mkdir(parents=True)
    (root / "__MACOSX" / "circle" / "x.png").write_bytes(b"junk")
    src = open_source(root)
    assert len(src.samples) == 4
    assert src.ignored == []
    assert all(not any(p.startswith(".") or p == "__MACOSX" for p in s.path.split("/")) for s in src.samples)


def test_stray_image_in_split_folder_does_not_change_the_layout(tmp_path):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2, splits=("train", "test"))
    (root / "train" / "preview.png").write_bytes(image_bytes())
    src = open_source(root)
    assert {s.label for s in src.samples} == {"circle", "square"}  # not "train" and "test"
    assert Counter(s.split for s in src.samples) == {"train": 4, "test": 4}
    assert [(i.path, i.reason) for i in src.ignored] == [("train/preview.png", "not inside a class folder")]


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty" / "circle").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        open_source(tmp_path / "empty")


# ------------------------------------------------------------------------------ zip archives


@pytest.mark.parametrize("prefix, with_splits", [("", False), ("data/", True)])
def test_zip_is_read_in_place(tmp_path, prefix, with_splits):
    members = {}
    for split in ("train", "test") if with_splits else ("",):
        for label in ("circle", "square"):
            for i in range(3):
                folder = f"{prefix}{split}/{label}" if split else f"{prefix}{label}"
                members[f"{folder}/{i}.png"] = image_bytes(label, seed=i)
    members[f"{prefix}README.txt"] = b"about"
    archive = make_zip(tmp_path / "data.zip", members)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    src = open_source(archive)
    assert isinstance(src, ZipSource)
    assert len(src.samples) == (12 if with_splits else 6)
    assert {s.label for s in src.samples} == {"circle", "square"}
    if with_splits:
        assert Counter(s.split for s in src.samples) == {"train": 6, "test": 6}
    else:
        assert all(s.split is None for s in src.samples)
    assert [i.path for i in src.ignored] == [f"{prefix}README.txt"]
    for s in src.samples[:4]:
        assert src.read_bytes(s.path) == members[s.path]
        assert decode_rgb(src.read_bytes(s.path)).size == (16, 16)
    assert src.fingerprint(src.samples[0].path).startswith("zip:")

    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before == [Path("data.zip")], "nothing may be extracted next to the archive"


def test_zip_corrupt_member_raises_oserror_not_zip_internals(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"circle/0.png": image_bytes(), "square/0.png": image_bytes("square")})
    info = zipfile.ZipFile(archive).getinfo("circle/0.png")
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # flip a byte of the stored member
    archive.write_bytes(bytes(data))
    src = open_source(archive)
    with pytest.raises(OSError, match="archive member"):
        src.read_bytes("circle/0.png")
    assert src.read_bytes("square/0.png") == image_bytes("square")


def test_not_a_zip_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"definitely not a zip archive")
    with pytest.raises(DataError, match="not a readable zip"):
        open_source(bad)


def zip_bomb(path: Path, inflated: int = 40 << 20) -> Path:
    """A real image per class plus circle/bomb.png: ``inflated`` bytes of zeros, about 1030:1 compressed."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("circle/0.png", image_bytes())
        zf.writestr("square/0.png", image_bytes("square"))
        zf.writestr(zipfile.ZipInfo("circle/bomb.png"), bytes(inflated), zipfile.ZIP_DEFLATED, 9)
    return path


def test_zip_bomb_member_is_refused_before_inflating(tmp_path, monkeypatch):
    src = open_source(zip_bomb(tmp_path / "bomb.zip"))
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda zf, name, *a, **k: opened.append(str(name)) or real_open(zf, name, *a, **k))
    with pytest.raises(OSError, match="compression ratio 1,0[0-9][0-9]:1 is above the limit 1,000:1"):
        src.read_bytes("circle/bomb.png")
    assert opened == []  # refused from the central directory, never decompressed
    assert src.read_bytes("square/0.png") == image_bytes("square")


def test_zip_member_limits_are_configurable(tmp_path):
    archive = zip_bomb(tmp_path / "bomb.zip", inflated=4 << 20)
    lenient = open_source(archive, archive_limits=ArchiveLimits(max_ratio=2000))
    assert len(lenient.read_bytes("circle/bomb.png")) == 4 << 20
    strict = open_source(archive, archive_limits=ArchiveLimits(max_member_bytes=1000))
    with pytest.raises(OSError, match="4,194,304 bytes uncompressed, above the limit of 1,000"):
        strict.read_bytes("circle/bomb.png")
    assert ArchiveLimits() == ArchiveLimits(max_member_bytes=256 << 20, max_ratio=1000)


def test_zip_unsafe_member_names_are_ignored_not_made_classes(tmp_path):
    members = {"circle/0.png": image_bytes(), "square/0.png": image_bytes("square")}
    unsafe = ["/abs/cat/y.png", "../up/cat/x.png", "circle/../../z.png", "C:/w/cat/x.png", "\\\\host\\cat\\x.png"]
    archive = make_zip(tmp_path / "a.zip", {**members, **{name: image_bytes() for name in unsafe}})
    src = open_source(archive)
    assert {s.label for s in src.samples} == {"circle", "square"}
    assert sorted(s.path for s in src.samples) == sorted(members)
    reasons = {i.path: i.reason for i in src.ignored}
    assert set(reasons) == set(unsafe)
    assert all("unsafe member name" in r for r in reasons.values()), reasons


def test_zip_member_name_flagged_utf8_but_not_utf8_is_a_data_error(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"circle/caf\u00e9.png": image_bytes(), "square/0.png": image_bytes("square")})
    data = archive.read_bytes().replace("caf\u00e9".encode(), b"caf\xe9\xff")  # same length, flag 0x800 kept
    archive.write_bytes(data)
    with pytest.raises(DataError, match="not valid UTF-8"):
        open_source(archive)


# ------------------------------------------------------------------------------ manifests


def write_manifest_images(folder: Path) -> None:
    (folder / "img").mkdir(parents=True)
    for i, label in enumerate(["circle", "circle", "square", "square"]):
        (folder / "img" / f"{i}.png").write_bytes(image_bytes(label, seed=i))


MANIFEST_ROWS = [
    {"path": "img/0.png", "label": "circle", "split": "train", "group": "g1", "site": "north"},
    {"path": "img/1.png", "label": "circle", "split": "Valid", "group": "g2", "site": "south"},
    {"path": "img/2.png", "label": "square", "split": "test", "group": "g1", "site": ""},
    {"path": "img/3.png", "label": "square", "split": "", "group": "g3", "site": "north"},
]


def check_manifest_source(src):
    assert isinstance(src, ManifestSource)
    assert src.meta_columns == ["site"]
    got = [(s.path, s.label, s.split, s.group, s.meta) for s in src.samples]
    assert got == [
        ("img/0.png", "circle", "train", "g1", {"site": "north"}),
        ("img/1.png", "circle", "val", "g2", {"site": "south"}),
        ("img/2.png", "square", "test", "g1", {"site": ""}),
        ("img/3.png", "square", None, "g3", {"site": "north"}),
    ]
    assert src.read_bytes("img/2.png") == image_bytes("square", seed=2)


def test_csv_manifest(tmp_path):
    write_manifest_images(tmp_path)
    lines = ["path,label,split,group,site"] + [",".join(r.values()) for r in MANIFEST_ROWS]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    check_manifest_source(open_source(tmp_path / "m.csv"))


def test_jsonl_manifest(tmp_path):
    write_manifest_images(tmp_path)
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in MANIFEST_ROWS) + "\n\n")
    check_manifest_source(open_source(tmp_path / "m.jsonl"))


def test_manifest_path_escaping_its_folder_is_refused(tmp_path):
    (tmp_path / "x.png").write_bytes(image_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,label\n../x.png,circle\n")
    with pytest.raises(DataError) as info:
        open_source(tmp_path / "sub" / "m.csv")
    msg = str(info.value)
    assert "'../x.png'" in msg and "outside" in msg and "row 2" in msg


@pytest.mark.parametrize(
    "text, missing",
    [("file,label\na.png,cat\n", "path"), ("path,class\na.png,cat\n", "label"), ("name\na.png\n", "path, label")],
)
def test_manifest_missing_columns(tmp_path, text, missing):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=f"lacks the column\\(s\\) {missing}"):
        open_source(tmp_path / "m.csv")


def test_manifest_bad_rows(tmp_path):
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(DataError, match="no rows"):
        open_source(tmp_path / "empty.csv")
    (tmp_path / "blank.csv").write_text("path,label\na.png,\n")
    with pytest.raises(DataError, match="must not be empty"):
        open_source(tmp_path / "blank.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png", "label": "x"}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        open_source(tmp_path / "bad.jsonl")
    (tmp_path / "split.csv").write_text("path,label,split\na.png,x,holdout\n")
    with pytest.raises(DataError, match="unknown split"):
        open_source(tmp_path / "split.csv")


# ------------------------------------------------------------------------------ built-in and errors


def test_builtin_digits():
    src = open_source("builtin:digits")
    assert isinstance(src, BuiltinSource)
    assert len(src.samples) == 1797
    assert sorted({s.label for s in src.samples}, key=int) == [str(d) for d in range(10)]
    for s in src.samples[:3] + src.samples[-2:]:
        px = np.asarray(decode_rgb(src.read_bytes(s.path)))
        assert px.shape == (8, 8, 3)
        assert px.max() > 100 and px.min() == 0  # a real digit, not a blank tile


def test_missing_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        open_source(tmp_path / "nope")


def test_unknown_builtin_is_a_user_error():
    with pytest.raises(UserError, match="digits"):
        open_source("builtin:imagenet")


def test_unsupported_file_is_a_user_error(tmp_path):
    (tmp_path / "data.tar").write_bytes(b"x")
    with pytest.raises(UserError, match="not a folder"):
        open_source(tmp_path / "data.tar")


# ------------------------------------------------------------------------------ shared CIFAR-10 archive


def test_cifar10_zip_listing(cifar_zip):
    src = open_source(cifar_zip)
    assert len(src.samples) == 60_000
    labels = Counter(s.label for s in src.samples)
    assert len(labels) == 10 and set(labels.values()) == {6000}
    assert Counter(s.split for s in src.samples) == {"train": 50_000, "test": 10_000}
    for s in src.samples[::12_000]:
        assert decode_rgb(src.read_bytes(s.path)).size == (32, 32)


def test_jsonl_metadata_columns_come_from_every_row(tmp_path):
    from synth import shape_image

    for name in ("a.png", "b.png"):
        shape_image("circle", 16).save(tmp_path / name)
    (tmp_path / "m.jsonl").write_text(
        '{"path": "a.png", "label": "x"}\n{"path": "b.png", "label": "y", "camera": "phone"}\n'
    )
    src = open_source(tmp_path / "m.jsonl")
    assert src.meta_columns == ["camera"]
    assert [s.meta["camera"] for s in src.samples] == ["", "phone"]
