"""A .json union of sources: one dataset whose samples keep their own readers, labels and splits."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from synth import make_folder, shape_image

from imgclf.data.dataset import prepare
from imgclf.data.preprocess import Preprocess
from imgclf.data.sources import open_source
from imgclf.data.union_source import write_union
from imgclf.errors import DataError


def manifest_folder(root, labels=("circle", "square"), per_label=3, seed=7):
    """root/images/*.png and root/manifest.csv (path,label,who), like a feedback export."""
    (root / "images").mkdir(parents=True)
    rows = [["path", "label", "who"]]
    for i in range(per_label * len(labels)):
        label = labels[i % len(labels)]
        shape_image(label, 24, seed=seed * 1000 + i).save(root / "images" / f"{i}.png")
        rows.append([f"images/{i}.png", label, f"user{i}"])
    with open(root / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root / "manifest.csv"


@pytest.fixture
def union(tmp_path):
    folder = make_folder(tmp_path / "photos", per_class=4)
    data = tmp_path / "data"
    manifest = manifest_folder(data / "feedback")
    write_union(data / "union.json", [{"data": str(folder)}, {"data": "feedback/manifest.csv", "prefix": "feedback:"}])
    return data / "union.json", folder, manifest


def test_every_part_keeps_its_samples_labels_and_bytes(union):
    path, folder, manifest = union
    source = open_source(path)
    assert source.kind == "union"
    folder_src, manifest_src = open_source(folder), open_source(manifest)
    assert len(source.samples) == len(folder_src.samples) + len(manifest_src.samples) == 12 + 6
    by_path = {s.path: s for s in source.samples}
    for s in folder_src.samples:  # an unprefixed part keeps its own names: a run's splits.csv still matches
        assert by_path[s.path].label == s.label
        assert source.read_bytes(s.path) == folder_src.read_bytes(s.path)
        assert source.fingerprint(s.path) == folder_src.fingerprint(s.path)
    for s in manifest_src.samples:
        assert by_path["feedback:" + s.path].label == s.label
        assert by_path["feedback:" + s.path].meta["who"] == s.meta["who"]
        assert source.read_bytes("feedback:" + s.path) == manifest_src.read_bytes(s.path)
    assert source.meta_columns == ["who"]
    assert by_path[folder_src.samples[0].path].meta == {"who": ""}  # every sample has every column
    described = source.describe()
    assert [p["prefix"] for p in described["parts"]] == ["", "feedback:"]
    assert [p["kind"] for p in described["parts"]] == ["folder", "manifest"]
    with pytest.raises(OSError):
        source.read_bytes("feedback:images/missing.png")


def test_a_reused_split_assigns_each_part_and_decodes_through_the_cache(union, tmp_path):
    path, folder, _ = union
    source = open_source(path)
    names = [s.path for s in source.samples]
    splits = tmp_path / "splits.csv"
    wanted = {names[0]: "test", names[1]: "val", names[-1]: "train", names[2]: "train"}
    with open(splits, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "group"])
        for i, (name, split) in enumerate(wanted.items()):
            w.writerow([name, "circle" if i % 2 else "square", split, ""])
    data = prepare(source, Preprocess(16), splits_from=splits, cache_dir=tmp_path / "cache")
    assert sorted(s.path for s in data.samples) == sorted(wanted)  # images the splits.csv does not list are left out
    assert {s.path: sp for s, sp in zip(data.samples, data.splits)} == wanted
    assert data.pixels[data.rows].shape == (4, 16, 16, 3)
    labels = {name: "circle" if i % 2 else "square" for i, name in enumerate(wanted)}
    assert {s.path: s.label for s in data.samples} == labels  # labels come from the splits.csv, as for any reused split


def test_relative_parts_move_with_the_union_file(union, tmp_path):
    path, _, _ = union
    moved = tmp_path / "elsewhere"
    shutil.move(str(path.parent), str(moved))
    source = open_source(moved / "union.json")
    assert sum(s.path.startswith("feedback:") for s in source.samples) == 6
    assert source.read_bytes("feedback:images/0.png") == (moved / "feedback" / "images" / "0.png").read_bytes()


def test_unions_nest_and_a_cycle_is_refused(union, tmp_path):
    path, _, _ = union
    write_union(tmp_path / "outer.json", [{"data": str(path)}, {"data": "builtin:digits", "prefix": "digits:"}])
    outer = open_source(tmp_path / "outer.json")
    assert len(outer.samples) == 18 + 1797
    assert outer.read_bytes("feedback:images/1.png") == open_source(path).read_bytes("feedback:images/1.png")
    write_union(tmp_path / "loop.json", [{"data": "loop.json"}])
    with pytest.raises(DataError, match="nest more than"):
        open_source(tmp_path / "loop.json")


def test_two_parts_with_the_same_names_need_a_prefix(tmp_path):
    folder = make_folder(tmp_path / "photos", per_class=2)
    write_union(tmp_path / "twice.json", [{"data": str(folder)}, {"data": str(folder)}])
    with pytest.raises(DataError, match="give one part a prefix"):
        open_source(tmp_path / "twice.json")
    write_union(tmp_path / "ok.json", [{"data": str(folder)}, {"data": str(folder), "prefix": "copy/"}])
    assert len(open_source(tmp_path / "ok.json").samples) == 12


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable JSON file"),
        (json.dumps({"sources": []}), "not a dataset union"),
        (json.dumps({"format": "imgclf-union", "version": 99, "sources": [{"data": "x"}]}), "version 99"),
        (json.dumps({"format": "imgclf-union", "version": 1, "sources": []}), "non-empty list"),
        (json.dumps({"format": "imgclf-union", "version": 1, "sources": [{"prefix": "a"}]}), "needs \"data\""),
    ],
)
def test_a_malformed_union_file_is_one_sentence(tmp_path, content, message):
    (tmp_path / "u.json").write_text(content)
    with pytest.raises(DataError, match=message):
        open_source(tmp_path / "u.json")


def test_decoding_in_worker_processes_reads_every_part(union, tmp_path, monkeypatch):
    """The cache forks workers for large requests; each re-opens its parts' file handles."""
    import imgclf.data.cache as cache

    monkeypatch.setattr(cache, "PROCESS_POOL_MIN", 1)
    source = open_source(union[0])
    data = prepare(source, Preprocess(16), cache_dir=tmp_path / "cache", val_fraction=0.0, test_fraction=0.0)
    assert len(data.samples) == 18 and not data.skipped
    assert np.asarray(data.pixels[data.rows]).std() > 0
