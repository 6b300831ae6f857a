"""Batch prediction in several processes: each predicts a contiguous share and rank 0 merges the
parts, in input order, into the very file one process writes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from synth import make_folder

from imgclf.errors import UserError
from imgclf.predict import Prediction
from imgclf.predict_distributed import check_output, part_path, prediction_from_json, prediction_to_json, shard_bounds


@pytest.mark.parametrize("n, batch, world", [(0, 8, 2), (5, 8, 2), (100, 8, 2), (100, 8, 3), (97, 10, 4), (30, 16, 5)])
def test_shards_are_contiguous_runs_of_whole_batches_covering_every_input(n, batch, world):
    bounds = [shard_bounds(n, batch, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, end), (start, _) in zip(bounds, bounds[1:]):
        assert end == start  # contiguous, in rank order: concatenating the parts keeps input order
    for start, end in bounds:
        assert start % batch == 0 or start == n  # each image keeps its one-process batch-mates (an empty share at the end)
        assert end % batch == 0 or end == n
    sizes = [-(-(e - s) // batch) for s, e in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_prediction_survives_its_part_file_exactly():
    odd_name = os.fsdecode(b"caf\xe9-\xff.png")  # not UTF-8: held as surrogate escapes
    preds = [
        Prediction(odd_name, "cat", 0.8123456789012345, [("cat", 0.8123456789012345), ("dog", 0.1)], None, False),
        Prediction("broken.png", error="cannot decode image"),
    ]
    import json

    assert [prediction_from_json(json.loads(json.dumps(prediction_to_json(p)))) for p in preds] == preds


def test_several_processes_need_an_output_file(tmp_path):
    with pytest.raises(UserError, match="--output"):
        check_output(None)
    assert part_path(tmp_path / "out.csv", 1, 2).name == ".out.csv.part-00001-of-00002.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_two_processes_write_exactly_what_one_process_writes(digits_run, tmp_path, suffix):
    folder = make_folder(tmp_path / "images", classes=("circle", "square", "triangle"), per_class=23)  # 69: uneven shares
    (folder / "circle" / "zz_broken.png").write_bytes(b"not an image")  # an error row, in its place
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
    cmd = [sys.executable, "-m", "imgclf", "predict", str(digits_run), str(folder), "--batch-size", "8", "--top-k", "2"]
    subprocess.run([*cmd, "--output", str(one)], check=True, env=env, capture_output=True)
    out = subprocess.run([*cmd, "--output", str(two), "--nproc", "2"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert two.read_bytes() == one.read_bytes()
    assert out.stdout.count("Predicted 69 image(s), 1 could not be read") == 1  # one summary, from the launcher
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["images", one.name, two.name])  # the parts are gone


@pytest.mark.slow
def test_under_torchrun_without_an_output_file_it_is_one_sentence(digits_run, tmp_path):
    folder = make_folder(tmp_path / "images", per_class=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "imgclf", "predict",
           str(digits_run), str(folder)]  # fmt: skip
    out = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert out.returncode != 0
    assert "needs --output FILE" in out.stderr
