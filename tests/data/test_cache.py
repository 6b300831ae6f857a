"""The decoded-image cache (PixelStore) and prepare(), which decodes through it and validates the data."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections import Counter

import numpy as np
import pytest
from synth import (
    encode,
    make_folder,
    make_zip,
    random_bytes,
    shape_image,
    truncated_jpeg,
)

from imgclf.data.cache import PixelStore, clear_cache, content_key
from imgclf.data.dataset import prepare, read_splits_csv
from imgclf.data.preprocess import Preprocess
from imgclf.data.sources import open_source
from imgclf.errors import DataError

PP = Preprocess(img_size=16)


@pytest.fixture
def cache_dir(tmp_path):
    # Each test its own store: identical synthetic images in other tests would otherwise be hits.
    return tmp_path / "cache"


def get_all(store, source):
    return store.get(source, [s.path for s in source.samples], workers=2)


# ------------------------------------------------------------------------------ PixelStore


def test_second_pass_decodes_nothing_and_pixels_match_preprocess(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=4, size=24)
    src = open_source(root)
    store = PixelStore(PP, cache_dir)
    first = get_all(store, src)
    assert first.decoded == 8 and first.failures == {}
    second = get_all(store, src)
    assert second.decoded == 0
    assert np.array_equal(second.rows, first.rows) and len(set(first.rows.tolist())) == 8
    assert second.pixels.shape[1:] == (16, 16, 3) and second.pixels.dtype == np.uint8
    for i, s in enumerate(src.samples):
        assert np.array_equal(second.pixels[second.rows[i]], PP.load(src.read_bytes(s.path)))
    store.close()
    # A new store object (a new process) on the same folder sees the same cache.
    again = PixelStore(PP, cache_dir)
    assert get_all(again, src).decoded == 0
    again.close()


def test_changed_and_added_files_cost_exactly_one_decode_each(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=4)
    store = PixelStore(PP, cache_dir)
    assert get_all(store, open_source(root)).decoded == 8
    shape_image("square", 32, seed=999).save(root / "circle" / "circle_000.png")  # new content, same name
    shape_image("circle", 32, seed=1000).save(root / "circle" / "added.png")
    src = open_source(root)
    res = get_all(store, src)
    assert res.decoded == 2
    i = [s.path for s in src.samples].index("circle/circle_000.png")
    assert np.array_equal(res.pixels[res.rows[i]], PP.load((root / "circle" / "circle_000.png").read_bytes()))
    store.close()


def test_keys_follow_content_not_path(tmp_path, cache_dir):
    make_folder(tmp_path / "a", classes=("circle", "square"), per_class=3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    store = PixelStore(PP, cache_dir)
    src_a, src_b = open_source(tmp_path / "a"), open_source(tmp_path / "b")
    assert get_all(store, src_a).decoded == 6
    assert get_all(store, src_b).decoded == 0  # the same images in another folder
    p = src_a.samples[0].path
    assert content_key(src_a.read_bytes(p)) == content_key(src_b.read_bytes(p))
    assert content_key(src_a.read_bytes(p)) != content_key(src_a.read_bytes(src_a.samples[1].path))
    assert src_a.fingerprint(p) != src_b.fingerprint(p)  # another file, same content
    # Another image size is another store: it decodes again.
    other = PixelStore(Preprocess(img_size=8), cache_dir)
    assert get_all(other, src_a).decoded == 6
    assert other.dir != store.dir
    store.close()
    other.close()


def test_corrupt_file_is_a_cached_failure(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=3)
    (root / "circle" / "broken.jpg").write_bytes(truncated_jpeg())
    src = open_source(root)
    broken = [s.path for s in src.samples].index("circle/broken.jpg")
    store = PixelStore(PP, cache_dir)
    first = get_all(store, src)
    assert first.decoded == 7
    assert first.failures == {broken: "truncated image"}
    assert first.rows[broken] == -1 and (np.delete(first.rows, broken) >= 0).all()
    second = get_all(store, src)
    assert second.decoded == 0, "a known failure is not decoded again"
    assert second.failures == {broken: "truncated image"}
    store.close()


def test_unreadable_file_is_a_failure_and_not_cached(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2)
    link = root / "circle" / "moved.png"
    os.symlink(tmp_path / "elsewhere.png", link)  # dangling: the file it names does not exist yet
    src = open_source(root)
    i = [s.path for s in src.samples].index("circle/moved.png")
    store = PixelStore(PP, cache_dir)
    res = get_all(store, src)
    assert res.decoded == 4
    assert list(res.failures) == [i] and "cannot read file" in res.failures[i]
    shape_image("circle", 32, seed=5).save(tmp_path / "elsewhere.png")  # the link now resolves
    res = get_all(store, src)
    assert res.decoded == 1 and res.failures == {}
    store.close()


def test_corrupt_zip_member_is_a_failure_not_a_crash(tmp_path, cache_dir):
    members = {f"{c}/{i}.png": encode(shape_image(c, 16, seed=i), "PNG") for c in ("circle", "square") for i in range(2)}
    archive = make_zip(tmp_path / "a.zip", members)
    info = zipfile.ZipFile(archive).getinfo("square/1.png")
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF
    archive.write_bytes(bytes(data))
    src = open_source(archive)
    store = PixelStore(PP, cache_dir)
    res = get_all(store, src)
    i = [s.path for s in src.samples].index("square/1.png")
    assert list(res.failures) == [i] and "archive member" in res.failures[i]
    store.close()


def test_clear_cache_removes_the_folder(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2)
    store = PixelStore(PP, cache_dir)
    get_all(store, open_source(root))
    store.close()
    assert any(cache_dir.rglob("pixels.u8"))
    folder, freed = clear_cache(cache_dir)
    assert folder == cache_dir and not cache_dir.exists()
    assert freed >= 4 * 16 * 16 * 3
    assert clear_cache(cache_dir) == (cache_dir, 0)  # nothing left: not an error


# ------------------------------------------------------------------------------ prepare()


def test_prepare_reads_splits_and_reports(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square", "triangle"), per_class=10)
    (root / "square" / "junk.png").write_bytes(random_bytes())
    (root / "triangle" / "cut.jpg").write_bytes(truncated_jpeg())
    (root / "readme.txt").write_text("not data")
    data = prepare(root, PP, cache_dir=cache_dir)
    assert data.classes == ["circle", "square", "triangle"]
    assert len(data.samples) == 30 and len(data.rows) == 30
    assert all(s.path not in ("square/junk.png", "triangle/cut.jpg") for s in data.samples)

    report = json.loads(json.dumps(data.report()))  # must be JSON-serialisable as written
    assert report["images_found"] == 32 and report["images_read"] == 30 and report["images_skipped"] == 2
    assert sorted((s["path"], s["reason"]) for s in report["skipped"]) == [
        ("square/junk.png", "not an image (unrecognised format)"),
        ("triangle/cut.jpg", "truncated image"),
    ]
    assert report["files_ignored"] == [{"path": "readme.txt", "reason": "not an image file extension"}]
    assert report["class_counts"] == {"circle": 10, "square": 10, "triangle": 10}
    assert sum(report["split_sizes"].values()) == 30 and report["split_sizes"]["train"] >= 20
    assert report["split_method"] == "stratified"

    train = data.split("train")
    assert len(train) == report["split_sizes"]["train"]
    assert [data.classes[k] for k in train.labels] == [s.label for s in train.samples]
    s0 = train.samples[0]
    assert np.array_equal(train.pixels[train.rows[0]], PP.load(data.source.read_bytes(s0.path)))


def test_prepare_refuses_a_single_class(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle",), per_class=5)
    with pytest.raises(DataError, match="only one class \\('circle'\\)"):
        prepare(root, PP, cache_dir=cache_dir)


def test_prepare_refuses_a_class_with_only_corrupt_images(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=5)
    (root / "broken").mkdir()
    for i in range(3):
        (root / "broken" / f"{i}.jpg").write_bytes(truncated_jpeg())
    with pytest.raises(DataError, match="class 'broken' has no readable image"):
        prepare(root, PP, cache_dir=cache_dir)


def test_report_with_nothing_readable_does_not_crash(tmp_path, cache_dir):
    root = tmp_path / "d"
    for label in ("circle", "square"):
        (root / label).mkdir(parents=True)
        (root / label / "x.jpg").write_bytes(truncated_jpeg())
    data = prepare(root, PP, classes=["circle", "square"], cache_dir=cache_dir)  # evaluation-style
    report = data.report()
    assert report["images_read"] == 0 and report["images_skipped"] == 2


def test_splits_csv_round_trip(tmp_path, cache_dir):
    images = tmp_path / "m"
    images.mkdir()
    rows = ["path,label,site"]
    for i in range(24):
        label = ("circle", "square")[i % 2]
        shape_image(label, 16, seed=i).save(images / f"{i}.png")
        rows.append(f"{i}.png,{label},site{i // 4}")
    (images / "list.csv").write_text("\n".join(rows) + "\n")
    data = prepare(images / "list.csv", PP, group_column="site", seed=1, cache_dir=cache_dir)
    out = tmp_path / "splits.csv"
    data.write_splits_csv(out)
    assert out.read_text().splitlines()[0] == "path,label,split,group,site"
    saved = read_splits_csv(out)
    assert saved == {s.path: (s.label, sp, s.meta["site"]) for s, sp in zip(data.samples, data.splits)}
    split_of_site: dict[str, set[str]] = {}
    for _label, split, site in saved.values():
        split_of_site.setdefault(site, set()).add(split)
    assert all(len(splits) == 1 for splits in split_of_site.values())  # grouped by site

    # Reusing the file reproduces the splits exactly, whatever the seed.
    again = prepare(images / "list.csv", PP, splits_from=out, seed=99, cache_dir=cache_dir)
    assert dict(zip((s.path for s in again.samples), again.splits)) == {p: v[1] for p, v in saved.items()}
    assert again.split_method.startswith("reused from")


def test_prepare_does_not_rewrite_the_callers_source(tmp_path, cache_dir):
    images = tmp_path / "m"
    images.mkdir()
    lines = ["path,label,site"]
    for i in range(12):
        label = ("circle", "square")[i % 2]
        shape_image(label, 16, seed=i).save(images / f"{i}.png")
        lines.append(f"{i}.png,{label},s{i // 3}")
    (images / "list.csv").write_text("\n".join(lines) + "\n")
    src = open_source(images / "list.csv")
    prepare(src, PP, group_column="site", cache_dir=cache_dir)
    assert all(s.group is None and s.split is None for s in src.samples)


def test_prepare_only_splits_decodes_just_those(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=3, splits=("train", "test"))
    data = prepare(root, PP, only_splits=("test",), cache_dir=cache_dir)
    assert Counter(data.splits) == {"test": 6}
    store = PixelStore(PP, cache_dir)
    assert get_all(store, data.source).decoded == 6  # the train images were never decoded
    store.close()


def test_prepare_with_model_classes_refuses_unknown_labels(tmp_path, cache_dir):
    root = make_folder(tmp_path / "d", classes=("circle", "square"), per_class=2)
    with pytest.raises(DataError, match="'square' is not one of the model's classes"):
        prepare(root, PP, classes=["circle", "triangle"], cache_dir=cache_dir)


def test_file_names_that_are_not_utf8_go_through_prepare_and_splits_csv(tmp_path, cache_dir):
    # Linux file names are bytes: a folder named in Latin-1, and a file in it, must train.
    root = tmp_path / os.fsdecode(b"donn\xe9es")
    make_folder(root, classes=("circle", "square"), per_class=6, size=16)
    with open(os.fsencode(root / "circle") + b"/caf\xe9.png", "wb") as fh:
        fh.write(encode(shape_image("circle", 16, seed=50), "PNG"))
    data = prepare(root, PP, seed=0, cache_dir=cache_dir)
    assert "circle/caf\\xe9.png" in [s.path for s in data.samples]
    assert data.skipped == []
    json.dumps(data.report(), ensure_ascii=False).encode("utf-8")
    out = tmp_path / "splits.csv"
    data.write_splits_csv(out)
    again = prepare(root, PP, splits_from=out, cache_dir=cache_dir)
    assert [s.path for s in again.samples] == [s.path for s in data.samples]
    assert np.array_equal(again.pixels[again.rows], data.pixels[data.rows])
