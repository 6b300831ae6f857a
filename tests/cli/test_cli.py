"""End-to-end through the CLI: train, evaluate and predict on generated folders, a manifest and a
zip, with the numbers checked against scikit-learn."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import synth
import yaml
from click.testing import CliRunner
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from imgclf.cli import cli, main

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> str:
    """Invoke the CLI in-process; fail the test with its output if it exits non-zero."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_folder_train_evaluate_predict(tmp_path):
    data = synth.make_folder(tmp_path / "shapes", per_class=20)
    (data / "circle" / "broken.jpg").write_bytes(synth.truncated_jpeg())
    (data / "square" / "noise.jpg").write_bytes(synth.random_bytes())
    run = tmp_path / "run"
    out = run_cli("train", data, "--epochs", 2, "--batch-size", 16, "--out", run)
    assert "Run directory" in out and "imgclf evaluate" in out

    # The run directory of design.md.
    for name in ("config.yaml", "data_report.json", "splits.csv", "metrics.jsonl", "model/model.safetensors", "model/model.json"):
        assert (run / name).exists(), name
    report = json.loads((run / "data_report.json").read_text())
    assert report["images_read"] == 60 and report["images_skipped"] == 2
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert "truncated" in reasons["broken.jpg"] and "not an image" in reasons["noise.jpg"]
    # Splits are drawn from the listing (62 files), then the 2 unreadable ones drop out.
    sizes = report["split_sizes"]
    assert sum(sizes.values()) == 60 and sizes["train"] >= 48 and min(sizes["val"], sizes["test"]) >= 5
    splits = read_csv(run / "splits.csv")
    assert len(splits) == 60 and {r["split"] for r in splits} == {"train", "val", "test"}
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and all("val_accuracy" in e for e in epochs)
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["classes"] == ["circle", "square", "triangle"] and meta["preprocess"]["img_size"] == 32
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["img_size"] == 32 and config["data"] == str(data)

    out = run_cli("evaluate", run)
    ev = run / "eval"
    metrics = json.loads((ev / "metrics.json").read_text())
    preds = read_csv(ev / "predictions.csv")
    test_paths = {r["path"] for r in splits if r["split"] == "test"}
    assert {p["path"] for p in preds} == test_paths  # evaluation reused the saved split
    classes = meta["classes"]
    y = np.array([classes.index(p["label"]) for p in preds])
    yhat = np.array([classes.index(p["predicted"]) for p in preds])
    assert metrics["n"] == len(preds) == sizes["test"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, yhat))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, yhat, average="macro", labels=[0, 1, 2], zero_division=0))
    assert metrics["weighted_precision"] == pytest.approx(precision_score(y, yhat, average="weighted", labels=[0, 1, 2], zero_division=0))
    assert metrics["macro_recall"] == pytest.approx(recall_score(y, yhat, average="macro", labels=[0, 1, 2], zero_division=0))
    assert metrics["confusion_matrix"] == confusion_matrix(y, yhat, labels=[0, 1, 2]).tolist()
    cm_csv = list(csv.reader(open(ev / "confusion_matrix.csv")))
    assert cm_csv[0][1:] == classes and [list(map(int, r[1:])) for r in cm_csv[1:]] == metrics["confusion_matrix"]
    assert (ev / "confusion_matrix.png").stat().st_size > 1000
    assert f"accuracy {metrics['accuracy']:.4f}" in out

    # Predict: files, a folder and a glob; a corrupt input gets an error row.
    new = tmp_path / "new"
    new.mkdir()
    synth.shape_image("triangle", 48, seed=999).save(new / "a.png")
    synth.shape_image("circle", 40, seed=998).convert("L").save(new / "b.jpg")
    (new / "c.jpg").write_bytes(synth.truncated_jpeg())
    out_csv = tmp_path / "preds.csv"
    out = run_cli("predict", run, new, "--output", out_csv, "--top-k", 2)
    assert "Predicted 2 image(s), 1 could not be read" in out
    rows = {Path(r["path"]).name: r for r in read_csv(out_csv)}
    assert set(rows) == {"a.png", "b.jpg", "c.jpg"}
    assert "truncated" in rows["c.jpg"]["error"] and rows["c.jpg"]["label"] == ""
    for name in ("a.png", "b.jpg"):
        r = rows[name]
        assert r["label"] in classes and r["error"] == ""
        assert float(r["top1_probability"]) >= float(r["top2_probability"])
        assert r["top1_label"] == r["label"]
    out_json = tmp_path / "preds.json"
    run_cli("predict", run, str(new / "*.png"), "--output", out_json)
    js = json.loads(out_json.read_text())
    assert len(js) == 1 and js[0]["label"] in classes
    assert sum(t["probability"] for t in js[0]["top"]) == pytest.approx(1.0, abs=1e-4)  # 3 classes, top 3

    # The API gives the same answer as the CLI for the same file.
    import imgclf

    api_pred = imgclf.load(run).predict([new / "a.png"], top_k=2)[0]
    assert api_pred.label == rows["a.png"]["label"]
    # bf16 inference (the default where supported) may differ slightly between batch compositions
    assert api_pred.probability == pytest.approx(float(rows["a.png"]["probability"]), abs=5e-3)


def test_manifest_with_groups_and_metadata(tmp_path):
    root = tmp_path / "m"
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(48):
        label = ("circle", "square")[i % 2]
        name = f"img{i:03d}.png"
        synth.shape_image(label, 32, seed=i).save(images / name)
        rows.append({"path": f"images/{name}", "label": label, "group": f"session{i // 4}", "camera": ("a", "b")[i % 3 == 0]})
    manifest = root / "labels.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "group", "camera"])
        w.writeheader()
        w.writerows(rows)
    run = tmp_path / "run"
    run_cli("train", manifest, "--epochs", 1, "--batch-size", 8, "--group-column", "group", "--out", run)
    splits = read_csv(run / "splits.csv")
    assert {"path", "label", "split", "group", "camera"} <= set(splits[0])
    split_of_group: dict[str, set] = {}
    for r in splits:
        split_of_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values()), "a group leaked across splits"
    assert {r["split"] for r in splits} == {"train", "val", "test"}
    report = json.loads((run / "data_report.json").read_text())
    assert report["metadata_columns"] == ["camera"]
    run_cli("evaluate", run)
    assert json.loads((run / "eval" / "metrics.json").read_text())["n"] == sum(r["split"] == "test" for r in splits)


def test_zip_with_predefined_splits(tmp_path):
    folder = synth.make_folder(tmp_path / "wrap" / "ds", per_class=8, splits=("train", "valid", "test"))
    archive = tmp_path / "ds.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f.relative_to(tmp_path / "wrap").as_posix())
    run = tmp_path / "run"
    before = set(tmp_path.rglob("*"))
    out = run_cli("train", archive, "--epochs", 1, "--out", run)
    created = {p for p in set(tmp_path.rglob("*")) - before if not p.is_relative_to(run)}
    assert not created, f"training from a zip wrote outside the run: {created}"
    assert "Images read: 72" in out
    report = json.loads((run / "data_report.json").read_text())
    assert report["split_sizes"] == {"train": 24, "val": 24, "test": 24}  # predefined splits honoured
    assert report["split_method"] == "predefined"
    run_cli("evaluate", run)
    assert json.loads((run / "eval" / "metrics.json").read_text())["n"] == 24


def test_config_file_reproduces_a_run(tmp_path):
    data = synth.make_folder(tmp_path / "d", per_class=10)
    run_cli("train", data, "--epochs", 1, "--lr", "0.001", "--seed", 3, "--out", tmp_path / "a")
    run_cli("train", "--config", tmp_path / "a" / "config.yaml", "--out", tmp_path / "b")
    a = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    b = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert {**a, "out": None} == {**b, "out": None}
    assert (tmp_path / "a" / "splits.csv").read_text() == (tmp_path / "b" / "splits.csv").read_text()
    # Same seed, same data: the same weights (training is deterministic on the CPU).
    from safetensors.numpy import load_file

    wa, wb = load_file(tmp_path / "a/model/model.safetensors"), load_file(tmp_path / "b/model/model.safetensors")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "{tmp}/missing", "--out", "{tmp}/r"], "does not exist"),
        (["train", "builtin:digits", "--model", "resnet_19x", "--out", "{tmp}/r"], "unknown model"),
        (["train", "{tmp}/empty", "--out", "{tmp}/r"], "no images found"),
        (["train", "{tmp}/one", "--out", "{tmp}/r"], "only one class"),
        (["train", "builtin:digits"], "--out"),
        (["evaluate", "{tmp}/nope"], "does not exist"),
        (["predict", "{tmp}/nope", "x.png"], "does not exist"),
        (["data", "check", "{tmp}/missing"], "does not exist"),
    ],
)
def test_user_mistakes_get_one_sentence_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    synth.make_folder(tmp_path / "one", classes=("circle",), per_class=3)
    with pytest.raises(SystemExit) as exc:
        main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_console_script_exit_code(tmp_path):
    """The installed `imgclf` executable itself: a mistake is exit code 2 without a traceback."""
    exe = Path(sys.executable).with_name("imgclf")
    proc = subprocess.run([exe, "evaluate", tmp_path / "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def test_api_load_takes_a_precision(tmp_path):
    import imgclf

    data = synth.make_folder(tmp_path / "d", per_class=6)
    imgclf.train(data, out=tmp_path / "run", epochs=1, batch_size=8)
    assert imgclf.load(tmp_path / "run", precision="fp32").precision == "fp32"
    assert imgclf.load(tmp_path / "run", precision="bf16").precision == "bf16"


def test_an_image_size_too_small_for_the_model_is_one_sentence_and_leaves_no_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "builtin:digits", "--model", "lenet5", "--img-size", "8", "--epochs", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error: lenet5 cannot take 8 px images" in err and "--img-size" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()
