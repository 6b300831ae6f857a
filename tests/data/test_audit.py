"""The dataset health check (`imgclf data check`): counts, unreadable files, duplicates and leakage."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import synth
from PIL import Image

from imgclf.data.audit import check_data, format_check
from imgclf.data.sources import Source


def errors(report: dict) -> list[str]:
    return [p["message"] for p in report["problems"] if p["severity"] == "error"]


def warnings_(report: dict) -> list[str]:
    return [p["message"] for p in report["problems"] if p["severity"] == "warning"]


def roundtrip(report: dict) -> dict:
    """The CLI prints the report with --json: it must survive strict JSON unchanged."""
    return json.loads(json.dumps(report, allow_nan=False))


def dup_of(report: dict, path: str) -> dict:
    groups = [g for g in report["duplicates"] if path in g["paths"]]
    assert len(groups) == 1, report["duplicates"]
    return groups[0]


@pytest.fixture
def unbalanced(tmp_path) -> Path:
    synth.make_folder(tmp_path, classes=("circle",), per_class=20)
    synth.make_folder(tmp_path, classes=("square",), per_class=5, seed=1)
    return tmp_path


def test_class_counts_and_imbalance(unbalanced):
    report = check_data(unbalanced)
    assert report["images_found"] == 25
    assert report["images_readable"] == 25
    assert report["classes"] == ["circle", "square"]
    assert report["class_counts"] == {"circle": 20, "square": 5}
    assert report["imbalance_ratio"] == pytest.approx(4.0)
    assert report["unreadable"] == [] and report["duplicates"] == []
    assert report["problems"] == [] and report["ok"] is True
    assert report["modes"] == {"RGB": 25} and report["formats"] == {"PNG": 25}
    assert report["sizes"]["width"] == {"min": 32, "median": 32, "max": 32}
    assert report["sizes"]["most_common"] == [{"width": 32, "height": 32, "count": 25}]
    # No predefined split: the report says how training would split, and counts add up.
    assert report["split_source"] != "predefined" and "seed=0" in report["split_source"]
    assert sum(report["split_sizes"].values()) == 25
    assert roundtrip(report) == report


def test_imbalance_above_limit_is_a_warning(unbalanced):
    report = check_data(unbalanced, max_imbalance=3.0)
    [warning] = warnings_(report)
    assert "imbalance" in warning and "'circle' has 20" in warning and "'square' has 5" in warning
    assert errors(report) == [] and report["ok"] is True


def test_unreadable_files_are_listed_with_reasons(tmp_path):
    synth.make_folder(tmp_path, per_class=4)
    (tmp_path / "circle" / "cut.jpg").write_bytes(synth.truncated_jpeg())
    (tmp_path / "square" / "noise.jpg").write_bytes(synth.random_bytes())
    (tmp_path / "triangle" / "bomb.png").write_bytes(synth.png_header_only(10_000, 10_000))
    (tmp_path / "triangle" / "empty.png").write_bytes(b"")

    report = check_data(tmp_path)

    assert report["images_found"] == 16
    assert report["images_readable"] == 12
    assert report["class_counts"] == {"circle": 4, "square": 4, "triangle": 4}
    reasons = {u["path"]: u["reason"] for u in report["unreadable"]}
    assert reasons["circle/cut.jpg"] == "truncated image"
    assert reasons["square/noise.jpg"].startswith("not an image")
    assert reasons["triangle/bomb.png"].startswith("image too large")
    assert reasons["triangle/empty.png"] == "empty file"
    # One error problem names them all, with reasons; training would skip them.
    [err] = errors(report)
    assert err.startswith("4 unreadable images")
    assert "circle/cut.jpg (truncated image)" in err
    assert report["ok"] is False
    # Unreadable files do not count towards modes, formats or sizes.
    assert report["formats"] == {"PNG": 12}
    assert roundtrip(report) == report


def test_read_failures_never_crash_the_check(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=3)
    os.symlink(tmp_path / "nowhere.png", tmp_path / "circle" / "dangling.png")

    class Flaky(Source):
        """A source whose reader raises something other than OSError for one sample."""

        def __init__(self, inner):
            super().__init__("flaky")
            self.inner, self.samples = inner, list(inner.samples)

        def read_bytes(self, path):
            if path == "square/square_000.png":
                raise RuntimeError("backend hiccup")
            return self.inner.read_bytes(path)

    from imgclf.data.sources import open_source

    report = check_data(Flaky(open_source(tmp_path)), workers=2)
    reasons = {u["path"]: u["reason"] for u in report["unreadable"]}
    assert reasons["circle/dangling.png"].startswith("cannot read file")
    assert "backend hiccup" in reasons["square/square_000.png"]
    assert report["images_readable"] == 5
    assert report["source"] == {"uri": "flaky", "kind": "source"}


def test_copy_across_splits_is_leakage(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=4, splits=("train", "val", "test"))
    shutil.copy(tmp_path / "train/circle/circle_000.png", tmp_path / "test/circle/copy.png")

    report = check_data(tmp_path)

    assert report["split_source"] == "predefined"
    group = dup_of(report, "test/circle/copy.png")
    assert sorted(group["paths"]) == ["test/circle/copy.png", "train/circle/circle_000.png"]
    assert group["kind"] == "leakage" and group["kinds"] == ["leakage"]
    assert sorted(group["splits"]) == ["test", "train"]
    assert group["labels"] == ["circle", "circle"]
    assert group["hash"].startswith("blake2b:")
    [err] = errors(report)
    assert "leakage" in err and "test/circle/copy.png [test]" in err


def test_copy_within_one_class_folder_is_within_split(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=4, splits=("train", "val", "test"))
    shutil.copy(tmp_path / "train/circle/circle_001.png", tmp_path / "train/circle/again.png")

    report = check_data(tmp_path)

    group = dup_of(report, "train/circle/again.png")
    assert group["kind"] == "within-split" and group["splits"] == ["train", "train"]
    assert errors(report) == []
    [warning] = warnings_(report)
    assert "within one split" in warning and "1 redundant copy" in warning
    assert report["ok"] is True


def test_copy_within_a_class_folder_without_split_folders(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=6)
    shutil.copy(tmp_path / "circle/circle_001.png", tmp_path / "circle/again.png")
    # With no val/test carved out every image trains, so the copies share a split.
    report = check_data(tmp_path, val_fraction=0, test_fraction=0)
    assert dup_of(report, "circle/again.png")["kind"] == "within-split"


def test_same_bytes_under_two_class_folders_is_conflicting_labels(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=4, splits=("train", "val", "test"))
    shutil.copy(tmp_path / "train/circle/circle_002.png", tmp_path / "train/square/mislabelled.png")

    report = check_data(tmp_path)

    group = dup_of(report, "train/square/mislabelled.png")
    assert group["kind"] == "conflicting-labels" and group["kinds"] == ["conflicting-labels"]
    assert sorted(group["labels"]) == ["circle", "square"]
    [err] = errors(report)
    assert "conflicting labels" in err


def test_leakage_with_conflicting_labels_lists_both_kinds(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=4, splits=("train", "val", "test"))
    shutil.copy(tmp_path / "train/circle/circle_002.png", tmp_path / "test/square/both.png")
    report = check_data(tmp_path)
    group = dup_of(report, "test/square/both.png")
    assert group["kind"] == "leakage" and group["kinds"] == ["leakage", "conflicting-labels"]
    assert len(errors(report)) == 2


def test_splits_match_the_ones_training_makes(tmp_path):
    """The leakage report is only useful if its splits are training's: compare with prepare()."""
    from imgclf.data.dataset import prepare
    from imgclf.data.preprocess import Preprocess

    synth.make_folder(tmp_path, classes=("circle", "square", "triangle"), per_class=10)
    for i in range(4):  # copies that random splitting scatters across train/val/test
        shutil.copy(tmp_path / f"circle/circle_00{i}.png", tmp_path / f"circle/copy_{i}.png")
    (tmp_path / "square" / "cut.jpg").write_bytes(synth.truncated_jpeg())

    report = check_data(tmp_path, seed=3, val_fraction=0.2, test_fraction=0.2)
    prepared = prepare(tmp_path, Preprocess(img_size=16), seed=3, val_fraction=0.2, test_fraction=0.2)

    train_split = {s.path: sp for s, sp in zip(prepared.samples, prepared.splits)}
    for group in report["duplicates"]:
        assert group["splits"] == [train_split[p] for p in group["paths"]]
    assert report["split_class_counts"] == prepared.report()["split_class_counts"]
    assert report["unreadable"][0]["path"] == prepared.skipped[0]["path"] == "square/cut.jpg"
    assert report["class_counts"] == prepared.report()["class_counts"]


def test_colour_modes_and_formats_are_those_of_the_files(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=2)
    Image.new("L", (40, 30), 128).save(tmp_path / "circle" / "grey.png")
    Image.new("P", (40, 30), 3).save(tmp_path / "square" / "palette.gif")
    Image.new("RGBA", (40, 30), (1, 2, 3, 4)).save(tmp_path / "square" / "alpha.png")
    (tmp_path / "square" / "photo.jpg").write_bytes(synth.encode(synth.shape_image("square", 48), "JPEG"))

    report = check_data(tmp_path)

    assert report["modes"] == {"RGB": 5, "L": 1, "P": 1, "RGBA": 1}
    assert report["formats"] == {"PNG": 6, "GIF": 1, "JPEG": 1}
    sizes = report["sizes"]
    assert sizes["width"] == {"min": 32, "median": 32, "max": 48}
    assert sizes["height"] == {"min": 30, "median": 32, "max": 48}
    assert sizes["most_common"][0] == {"width": 32, "height": 32, "count": 4}
    assert sizes["distinct"] == 3


def test_a_class_with_no_readable_image_and_a_single_class_are_errors(tmp_path):
    synth.make_folder(tmp_path, classes=("circle",), per_class=3)
    (tmp_path / "square").mkdir()
    (tmp_path / "square" / "broken.png").write_bytes(synth.random_bytes(100))
    report = check_data(tmp_path)
    assert report["class_counts"] == {"circle": 3, "square": 0}
    assert report["imbalance_ratio"] is None
    assert any("no readable image: square" in e for e in errors(report))
    assert roundtrip(report) == report

    shutil.rmtree(tmp_path / "square")
    report = check_data(tmp_path)
    assert any("only one class" in e for e in errors(report))


def test_ignored_files_are_a_warning(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=2)
    (tmp_path / "circle" / "notes.txt").write_text("not a picture")
    report = check_data(tmp_path)
    assert report["files_ignored"] == [{"path": "circle/notes.txt", "reason": "not an image file extension"}]
    [warning] = warnings_(report)
    assert "circle/notes.txt" in warning
    assert report["ok"] is True


def test_zip_archive(tmp_path):
    folder = synth.make_folder(tmp_path / "src", classes=("circle", "square"), per_class=6)
    shutil.copy(folder / "circle/circle_000.png", folder / "square/odd.png")
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f.relative_to(folder).as_posix())
    report = check_data(archive, workers=4)
    assert report["source"]["kind"] == "zip"
    assert report["class_counts"] == {"circle": 6, "square": 7}
    assert "conflicting-labels" in dup_of(report, "square/odd.png")["kinds"]


def test_builtin_digits():
    report = check_data("builtin:digits")
    assert report["images_found"] == report["images_readable"] == 1797
    assert report["classes"] == [str(d) for d in range(10)]
    assert report["modes"] == {"L": 1797} and report["formats"] == {"PNG": 1797}
    assert report["sizes"]["most_common"] == [{"width": 8, "height": 8, "count": 1797}]
    assert report["ok"] is True


def test_format_check_is_readable_plain_text(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=3, splits=("train", "val", "test"))
    (tmp_path / "train" / "circle" / "cut[1].jpg").write_bytes(synth.truncated_jpeg())
    (tmp_path / "val" / "square" / "noise.jpg").write_bytes(synth.random_bytes())
    shutil.copy(tmp_path / "train/square/square_000.png", tmp_path / "test/square/copy.png")

    text = format_check(check_data(tmp_path))

    assert "circle" in text and "square" in text
    assert "train/circle/cut[1].jpg" in text  # brackets survive (no markup interpretation)
    assert "val/square/noise.jpg" in text and "truncated image" in text
    assert "leakage" in text
    assert "ERROR" in text and "Result: 2 errors" in text
    assert "\x1b[" not in text  # no colour codes
    assert all(len(line) <= 100 for line in text.splitlines() if not line.startswith(("  ", "Data check")))


def test_format_check_of_a_clean_dataset(unbalanced):
    text = format_check(check_data(unbalanced))
    assert "Result: no problems found" in text
    assert "Imbalance ratio (largest/smallest class): 4" in text


def _manifest(folder: Path, group_of) -> Path:
    rows = ["path,label,session"]
    for i, p in enumerate(sorted(folder.rglob("*.png"))):
        rows.append(f"{p.relative_to(folder).as_posix()},{p.parent.name},{group_of(i)}")
    manifest = folder / "data.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_group_column_splits_by_group(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=10)
    report = check_data(_manifest(tmp_path, lambda i: f"s{i % 5}"), group_column="session")
    assert "group column 'session'" in report["split_source"]
    assert sum(report["split_sizes"].values()) == 20 and report["ok"] is True


def test_data_that_cannot_be_split_is_reported_not_raised(tmp_path):
    synth.make_folder(tmp_path, classes=("circle", "square"), per_class=3)
    report = check_data(_manifest(tmp_path, lambda i: "only-one"), group_column="session")
    assert report["split_source"].startswith("cannot split the data")
    assert any("at least two groups" in e for e in errors(report))
    assert report["images_readable"] == 6
    assert roundtrip(report) == report
    assert "cannot split the data" in format_check(report)


def test_file_names_that_are_not_utf8_are_reported_as_text(tmp_path):
    root = tmp_path / os.fsdecode(b"d\xe9")
    synth.make_folder(root, classes=("circle", "square"), per_class=3)
    with open(os.fsencode(root / "square") + b"/\xff.png", "wb") as fh:
        fh.write(synth.truncated_jpeg())
    report = check_data(root)
    text = json.dumps(roundtrip(report), ensure_ascii=False)
    text.encode("utf-8")
    assert "square/\\\\xff.png" in text  # the escaped name, itself JSON-escaped
    assert [u["path"] for u in report["unreadable"]] == ["square/\\xff.png"]
    format_check(report).encode("utf-8")
