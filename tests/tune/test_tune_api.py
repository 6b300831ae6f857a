"""imgclf.tune, imgclf.list_runs and imgclf.compare_runs as API names, and the refusals tune makes
before any trial trains (one UserError, not a study of failed trials)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from synth import make_folder

import imgclf
from imgclf.errors import UserError


def test_the_names_stay_functions_after_the_subpackage_is_imported():
    code = (
        "import imgclf, imgclf.tune.study, imgclf.tune.space, imgclf.registry.scan, imgclf.runs\n"
        "import inspect, types\n"
        "print(all(inspect.isfunction(getattr(imgclf, n)) for n in ('tune', 'list_runs', 'compare_runs')),\n"
        "      isinstance(imgclf.runs, types.ModuleType))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True True"  # imgclf.runs stays the run-directory module
    assert {"tune", "list_runs", "compare_runs"} <= set(imgclf.__all__)
    assert inspect.signature(imgclf.tune).parameters["time"].default is None


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes") / "d", per_class=4, size=16)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trials": 0}, "--trials must be"),
        ({"workers": 0}, "--workers must be"),
        ({"pruner": "asha"}, "--pruner must be"),
        ({"time": "soon"}, "--time"),
        ({"lr": "fast"}, "--lr"),
        ({"space": "missing.yaml"}, "--space missing.yaml: no such file"),
        ({"storage": "study.db"}, "database URL"),
        ({"val_fraction": 0.0}, "validation split"),
    ],
)
def test_refusals_before_any_trial(shapes, tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        imgclf.tune(shapes, out=tmp_path / "t", **options)
    assert not (tmp_path / "t" / "trial-0000").exists()


def test_unknown_training_options_are_type_errors(shapes, tmp_path):
    with pytest.raises(TypeError, match="learning_rate"):
        imgclf.tune(shapes, out=tmp_path / "t", learning_rate=0.1)


def test_an_out_folder_with_other_trials_is_refused(shapes, tmp_path):
    (tmp_path / "t" / "trial-0000").mkdir(parents=True)
    with pytest.raises(UserError, match="already holds trial folders"):
        imgclf.tune(shapes, out=tmp_path / "t", trials=1)
