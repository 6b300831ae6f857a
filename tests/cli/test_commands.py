"""The smaller commands end to end through the CLI: data check, cache clear, models, bench train."""

from __future__ import annotations

import json

import pytest
import synth
from click.testing import CliRunner

from imgclf.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_data_check_text_json_and_strict(tmp_path):
    data = synth.make_folder(tmp_path / "d", per_class=4)
    result = invoke("data", "check", data)
    assert result.exit_code == 0 and "Data check:" in result.output and "Result: no problems found" in result.output
    report = json.loads(invoke("data", "check", data, "--json").output)
    assert report["images_readable"] == 12

    (data / "circle" / "broken.jpg").write_bytes(synth.truncated_jpeg())
    result = invoke("data", "check", data, "--strict")
    assert result.exit_code == 1 and "problem(s) found" in result.output  # CliRunner mixes stderr in
    assert invoke("data", "check", data).exit_code == 0  # without --strict a problem is reported, not fatal


def test_cache_clear(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "store.bin").write_bytes(b"x" * 3_000_000)
    result = invoke("cache", "clear", "--cache-dir", cache)
    assert result.exit_code == 0 and f"Cleared {cache} (3.0 MB freed)." in result.output
    assert not cache.exists()


def test_models_table_and_json():
    result = invoke("models", "--filter", "simple_cnn")
    assert result.exit_code == 0 and "simple_cnn" in result.output and "timm has" in result.output
    rows = json.loads(invoke("models", "--filter", "lenet5", "--json").output)
    assert [r["name"] for r in rows] == ["lenet5"] and rows[0]["params"] > 0


@pytest.mark.slow
def test_bench_train_reports_throughput(tmp_path):
    data = synth.make_folder(tmp_path / "d", per_class=12)
    result = invoke("bench", "train", data, "--model", "simple_cnn", "--batch-size", 8, "--steps", 2, "--precision", "fp32", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.output[result.output.index("{"):])
    assert r["model"] == "simple_cnn" and r["batch_size"] == 8 and r["steps"] == 2 and r["precision"] == "fp32"
    assert r["train_images_per_second"] > 0
    text = invoke("bench", "train", data, "--model", "simple_cnn", "--batch-size", 8, "--steps", 2, "--precision", "fp32").output
    assert "simple_cnn at 32px, batch 8" in text and "TFLOP/s" in text
    # The training options reach the steps timed: a preset and its augmentation, as `imgclf train` builds them.
    out = invoke("bench", "train", data, "--preset", "fast-small", "--batch-size", 8, "--steps", 1, "--json").output
    r = json.loads(out[out.index("{"):])
    assert r["model"] == "fast_cnn" and r["preset"] == "fast-small" and "alternating" in " ".join(r["augmentation"])
