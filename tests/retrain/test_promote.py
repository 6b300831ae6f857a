"""The `current` link: moved atomically, relative to its folder, never replacing real files."""

from __future__ import annotations

import os
import threading

import pytest

from imgclf.errors import UserError
from imgclf.retrain.promote import point_link


def test_the_link_is_made_relative_and_resolves_to_the_run(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    link = point_link(tmp_path / "runs" / "current", tmp_path / "runs" / "a")
    assert link.is_symlink()
    assert os.readlink(link) == "a"  # relative: the folder of runs can move with its link
    assert os.path.realpath(link) == os.path.realpath(tmp_path / "runs" / "a")


def test_readers_always_find_the_old_run_or_the_new_one_while_the_link_moves(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        (run / "name").write_text(run.name)
    link = point_link(tmp_path / "current", runs[0])
    seen, failures, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add((link / "name").read_text())
            except OSError as exc:  # a moment without a link, or a half-made one
                failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            point_link(link, runs[i % 2])
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert seen == {"a", "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]  # no temporary link left behind


def test_a_real_folder_or_file_at_the_link_path_is_never_replaced(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not a symbolic link"):
        point_link(tmp_path / "current", tmp_path / "run")
    assert (tmp_path / "current" / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("mine too")
    with pytest.raises(UserError, match="not a symbolic link"):
        point_link(tmp_path / "file", tmp_path / "run")
    assert (tmp_path / "file").read_text() == "mine too"


def test_linking_to_something_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        point_link(tmp_path / "current", tmp_path / "missing")
    assert not os.path.lexists(tmp_path / "current")
