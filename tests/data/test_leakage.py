"""Duplicates across splits: prepare() and `imgclf train` refuse them, --group-duplicates keeps
each group in one split, --allow-leakage goes on; `imgclf data check` reports them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imgclf.data.audit import check_data
from imgclf.data.dataset import prepare
from imgclf.data.preprocess import Preprocess
from imgclf.errors import DataError

PP = Preprocess(16)


def photo(seed: int, size: int = 64) -> Image.Image:
    """A smooth random picture (colour blobs): distinct per seed, robust to re-encoding."""
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def recompressed(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def folder_with_copies(root: Path, *, pairs: int = 10, singles: int = 10) -> Path:
    """Two classes; in each, ``pairs`` photos with a re-encoded near-copy beside them."""
    seed = 0
    for label in ("a", "b"):
        d = root / label
        d.mkdir(parents=True)
        for i in range(pairs):
            photo(seed).save(d / f"p{i:02d}.png")
            (d / f"p{i:02d}_copy.jpg").write_bytes(recompressed(photo(seed)))
            seed += 1
        for i in range(singles):
            photo(seed).save(d / f"s{i:02d}.png")
            seed += 1
    return root


def split_of(data) -> dict[str, str]:
    return {s.path: sp for s, sp in zip(data.samples, data.splits)}


def test_a_made_split_that_separates_copies_is_refused_with_names_and_the_way_out(tmp_path):
    root = folder_with_copies(tmp_path / "d")
    with pytest.raises(DataError) as info:
        prepare(root, PP, cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.2, leakage="refuse")
    message = str(info.value)
    assert "near-identical" in message and "are in train and in val or test" in message
    assert "_copy.jpg" in message and "--group-duplicates" in message and "--allow-leakage" in message
    assert "\n" not in message


def test_group_duplicates_keeps_every_copy_beside_its_original(tmp_path):
    root = folder_with_copies(tmp_path / "d")
    data = prepare(root, PP, cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.2, group_duplicates=True, leakage="refuse")
    where = split_of(data)
    for path, split in where.items():
        if path.endswith("_copy.jpg"):
            assert where[path.replace("_copy.jpg", ".png")] == split
    assert {"train", "val", "test"} <= set(where.values())
    report = data.report()["duplicates"]
    assert report["groups"] == 20 and report["leaking_groups"] == [] and "duplicates grouped" in data.split_method


def test_allow_leakage_goes_on_and_the_report_lists_the_groups(tmp_path):
    root = folder_with_copies(tmp_path / "d")
    data = prepare(root, PP, cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.2, leakage="warn")
    leaks = data.report()["duplicates"]["leaking_groups"]
    assert leaks and all(g["splits"][0] == "train" and g["splits"][1] in ("val", "test") and not g["exact"] for g in leaks)
    assert prepare(root, PP, cache_dir=tmp_path / "c").duplicates is None  # not looked for unless asked (evaluation)


def test_predefined_folders_with_a_copy_in_train_and_test_name_the_files_to_move(tmp_path):
    root = tmp_path / "d"
    for split, label, name, data in [
        ("train", "a", "x.png", None), ("test", "a", "x_again.jpg", "copy"), ("train", "a", "y.png", None),
        ("train", "b", "z.png", None), ("test", "b", "w.png", None), ("test", "b", "same.png", "exact"),
    ]:  # fmt: skip
        (root / split / label).mkdir(parents=True, exist_ok=True)
        seed = {"x.png": 1, "x_again.jpg": 1, "y.png": 2, "z.png": 3, "w.png": 4, "same.png": 3}[name]
        if data == "copy":
            (root / split / label / name).write_bytes(recompressed(photo(seed)))
        else:
            photo(seed).save(root / split / label / name)
    (root / "test" / "b" / "same.png").write_bytes((root / "train" / "b" / "z.png").read_bytes())  # byte-identical
    with pytest.raises(DataError) as info:
        prepare(root, PP, cache_dir=tmp_path / "c", val_fraction=0.0, leakage="refuse")
    message = str(info.value)
    assert "2 groups" in message and "1 identical, 1 near-identical" in message
    assert "train/a/x.png [train] = test/a/x_again.jpg [test]" in message
    assert "move the copies" in message and "--allow-leakage" in message


def test_small_images_count_only_as_identical_copies(tmp_path):
    """Under 32 px a perceptual hash sees every pixel: similar drawings are not copies."""
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        base = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        for i in range(10):  # ten near-identical 8 x 8 drawings per class
            noisy = np.clip(base.astype(int) + rng.integers(-3, 4, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy, "L").save(root / label / f"{i}.png")
    data = prepare(root, PP, cache_dir=tmp_path / "c", leakage="refuse")
    assert data.report()["duplicates"]["groups"] == 0


def test_data_check_reports_near_duplicates_across_and_within_splits(tmp_path):
    root = folder_with_copies(tmp_path / "d", pairs=6, singles=4)
    report = check_data(root, val_fraction=0.2, test_fraction=0.2)
    near = report["near_duplicates"]
    assert len(near) == 12 and all(len(g["paths"]) == 2 for g in near)
    assert {g["kind"] for g in near} <= {"leakage", "within-split"}
    messages = " ".join(p["message"] for p in report["problems"])
    if any(g["kind"] == "leakage" for g in near):
        assert "near-identical images in more than one split" in messages and not report["ok"]
    grouped = check_data(root, val_fraction=0.2, test_fraction=0.2, group_duplicates=True)
    assert all(g["kind"] == "within-split" for g in grouped["near_duplicates"])
    assert report["duplicates"] == []  # no byte-identical files


def test_data_check_warns_when_a_centre_crop_cuts_away_more_than_a_quarter(tmp_path):
    root = tmp_path / "d"
    for label, size in (("a", (96, 32)), ("b", (40, 48))):
        (root / label).mkdir(parents=True)
        for i in range(4):
            photo(i + (10 if label == "b" else 0), 96).resize(size).save(root / label / f"{i}.png")
    report = check_data(root)
    assert report["crop"]["over_limit"] == 4 and report["crop"]["share"] == 0.5
    assert report["crop"]["worst"][0]["aspect"] == "3:1 (wide)" and report["crop"]["worst"][0]["cut"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["crop"]["resize_auto"] == "letterbox"
    warning = next(p["message"] for p in report["problems"] if "centre-cropping" in p["message"])
    assert "4 images (50%)" in warning and "--resize letterbox" in warning and "a/0.png" in warning
    assert report["channels"] == {"grey": 0, "channels_auto": 3}


@pytest.mark.slow
def test_train_refuses_before_anything_is_written_and_trains_with_allow_leakage_or_grouping(tmp_path):
    from imgclf.train.config import TrainConfig
    from imgclf.train.fit import fit

    root = folder_with_copies(tmp_path / "d", pairs=8, singles=8)
    base = dict(data=str(root), epochs=1, batch_size=8, img_size=16, val_fraction=0.2, test_fraction=0.2, cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match="--group-duplicates"):
        fit(TrainConfig(out=str(tmp_path / "refused"), **base))
    assert not (tmp_path / "refused").exists()  # refused before the run directory was kept

    fit(TrainConfig(out=str(tmp_path / "allowed"), allow_leakage=True, **base))
    report = json.loads((tmp_path / "allowed" / "data_report.json").read_text())
    assert report["duplicates"]["groups"] == 16 and report["duplicates"]["leaking_groups"]

    fit(TrainConfig(out=str(tmp_path / "grouped"), group_duplicates=True, **base))
    rows = {r["path"]: r["split"] for r in csv.DictReader(open(tmp_path / "grouped" / "splits.csv", encoding="utf-8"))}
    assert all(rows[p.replace("_copy.jpg", ".png")] == sp for p, sp in rows.items() if p.endswith("_copy.jpg"))
    assert yaml.safe_load((tmp_path / "grouped" / "config.yaml").read_text())["group_duplicates"] is True
