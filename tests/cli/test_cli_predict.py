"""`imgclf predict`: the "unsure" column and --only-unsure, through the CLI and the API."""

from __future__ import annotations

import csv
import json

import pytest
import synth
from click.testing import CliRunner

import imgclf
import imgclf.api as api_module
from imgclf.cli import cli, main
from imgclf.errors import UserError
from imgclf.predict import Prediction


class FakePredictor:
    """Stands in for a loaded model: the CLI's and API's own logic is what is under test here."""

    def __init__(self, answers: dict[str, bool | None]):
        self.answers = answers

    def predict(self, items, *, top_k, batch_size):
        out = []
        for item in items:
            name = str(item)
            if name.endswith("broken.png"):
                out.append(Prediction(name, error="truncated image"))
            else:
                unsure = self.answers[name.rsplit("/", 1)[-1]]
                prob = 0.4 if unsure else 0.9
                out.append(Prediction(name, label="cat", probability=prob, top=[("cat", prob), ("dog", 1 - prob)], unsure=unsure))
        return out


@pytest.fixture
def images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative paths: the table does not wrap them
    folder = tmp_path / "new"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png", "broken.png"):
        synth.shape_image("circle", 16, seed=len(name)).save(folder / name)
    return folder.relative_to(tmp_path)


def use(monkeypatch, answers):
    monkeypatch.setattr(api_module, "load", lambda run, backend="auto": FakePredictor(answers))


def test_the_table_has_an_unsure_column(monkeypatch, images):
    use(monkeypatch, {"a.png": True, "b.png": False, "c.png": None})
    result = CliRunner().invoke(cli, ["predict", "run", str(images)], terminal_width=200, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].replace("┃", "│")
    assert [c.strip() for c in header.split("│")] == ["image", "label", "probability", "top 3", "unsure"]
    cells = [[c.strip() for c in line.split("│")] for line in result.output.splitlines() if ".png" in line]
    unsure = {row[0].rsplit("/", 1)[-1]: row[-1] for row in cells}
    assert unsure == {"a.png": "yes", "b.png": "no", "c.png": "", "broken.png": ""}  # blank: no threshold stored
    assert [row[1] for row in cells if row[0].endswith("broken.png")] == ["error"]
    assert "Predicted 3 image(s), 1 could not be read." in result.output


def test_only_unsure_lists_and_writes_only_unsure_images(monkeypatch, images, tmp_path):
    use(monkeypatch, {"a.png": True, "b.png": False, "c.png": True})
    out = tmp_path / "unsure.csv"
    result = CliRunner().invoke(cli, ["predict", "run", str(images), "--only-unsure", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, newline="")))
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["a.png", "c.png"]
    assert {r["unsure"] for r in rows} == {"true"}
    assert "Listed 2 unsure image(s) of 3 predicted, 1 could not be read" in result.output

    result = CliRunner().invoke(cli, ["predict", "run", str(images), "--only-unsure"], terminal_width=200, catch_exceptions=False)
    listed = [[c.strip() for c in line.split("│")] for line in result.output.splitlines() if ".png" in line]
    assert len(listed) == 2 and all(row[-1] == "yes" for row in listed)


def test_only_unsure_on_a_run_without_a_threshold_says_what_to_do(monkeypatch, images, capsys):
    use(monkeypatch, {"a.png": None, "b.png": None, "c.png": None})
    with pytest.raises(SystemExit) as exc:
        main(["predict", "run", str(images), "--only-unsure"])
    assert exc.value.code == 2 and "imgclf evaluate run" in capsys.readouterr().err


def test_the_api_returns_what_the_command_shows(monkeypatch, images, tmp_path):
    use(monkeypatch, {"a.png": True, "b.png": False, "c.png": False})
    result = imgclf.predict_images("run", [str(images)], only_unsure=True, output=tmp_path / "u.json")
    assert [p.path.rsplit("/", 1)[-1] for p in result.predictions] == ["a.png"]
    assert (result.total, result.errors, result.unsure) == (4, 1, 1)
    assert [r["unsure"] for r in json.loads((tmp_path / "u.json").read_text())] == [True]
    with pytest.raises(UserError, match="--output must end in .csv or .json"):
        imgclf.predict_images("run", [str(images)], output=tmp_path / "u.txt")


@pytest.mark.slow
def test_only_unsure_after_a_real_evaluation(digits_run_copy, tmp_path):
    """End to end: evaluate stores the threshold; predict --only-unsure writes exactly the images below it."""
    run = digits_run_copy
    imgclf.evaluate(run, robustness=False, explain=False, target_accuracy=0.999)
    every = imgclf.predict_images(run, ["builtin:digits"], limit=300)
    expected = {p.path for p in every.predictions if p.unsure}
    assert all(p.unsure is not None for p in every.predictions)
    out = tmp_path / "unsure.csv"
    main_args = ["predict", str(run), "builtin:digits", "--limit", "300", "--only-unsure", "-o", str(out)]
    CliRunner().invoke(cli, main_args, catch_exceptions=False)
    assert {r["path"] for r in csv.DictReader(open(out, newline=""))} == expected
