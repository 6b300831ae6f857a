"""`imgclf serve`'s checks before anything starts (one sentence each), its settings, and its key."""

from __future__ import annotations

import os

import pytest

from imgclf.errors import UserError
from imgclf.serve import server
from imgclf.serve.security import API_KEY_ENV, KeyGuard, read_api_key
from imgclf.serve.settings import SETTINGS_ENV, ServeSettings


@pytest.fixture
def no_env(monkeypatch):
    for name in (API_KEY_ENV, SETTINGS_ENV, server.MULTIPROC_ENV):
        monkeypatch.setenv(name, "")  # recorded, so whatever serve() sets is undone after the test
        monkeypatch.delenv(name)


def fake_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    return run


@pytest.mark.parametrize(
    "options, words",
    [
        ({"workers": 0}, "--workers must be at least 1"),
        ({"port": 70000}, "--port must be between"),
        ({"backend": "tensorrt"}, "unknown backend"),
        ({"top_k": 0}, "top_k must be a whole number of at least 1"),
        ({"max_wait_ms": 5000}, "max_wait_ms must be between 0 and 1000"),
        ({"watch_seconds": -1}, "watch_seconds must be 0"),
        ({"api_key_file": "/no/such/key"}, "does not exist"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path, no_env, options, words):
    with pytest.raises(UserError, match=words):
        server.serve(fake_run(tmp_path), **options)


def test_a_missing_run_is_refused(tmp_path, no_env):
    with pytest.raises(UserError, match="does not exist"):
        server.serve(tmp_path / "nowhere")


def test_a_folder_without_a_model_is_refused_before_starting(tmp_path, no_env):
    with pytest.raises(UserError, match="no model.json"):
        server.serve(fake_run(tmp_path), store=str(tmp_path / "store"))
    assert not (tmp_path / "store").exists()  # nothing made for a run that cannot be served


def test_key_given_twice_or_too_short(tmp_path, no_env):
    key_file = tmp_path / "key"
    key_file.write_text("a-long-enough-key-123\n")
    with pytest.raises(UserError, match="not both"):
        server.serve(fake_run(tmp_path), api_key="another-long-key-456", api_key_file=str(key_file))
    with pytest.raises(UserError, match="12 to 512 printable characters"):
        server._resolve_key("short", None)


def test_keys_come_from_a_file_the_environment_or_are_made_up(tmp_path, monkeypatch, no_env):
    key_file = tmp_path / "key"
    key_file.write_text("  file-key-0123456789  \nsecond line ignored\n")
    assert read_api_key(str(key_file)) == "file-key-0123456789"
    monkeypatch.setenv(API_KEY_ENV, "env-key-0123456789")
    assert read_api_key(None) == "env-key-0123456789"
    monkeypatch.delenv(API_KEY_ENV)
    key, made_up = server._resolve_key(None, None)
    assert made_up and len(key) >= 24 and key != server._resolve_key(None, None)[0]


def test_key_guard():
    from fastapi import HTTPException

    guard = KeyGuard("right-key-0123456789")
    guard.check("right-key-0123456789")
    for presented, status in ((None, 401), ("", 401), ("wrong-key-0123456789", 403), ("right-key-012345678", 403)):
        with pytest.raises(HTTPException) as info:
            guard.check(presented)
        assert info.value.status_code == status
    with pytest.raises(HTTPException) as info:
        KeyGuard(None).check("anything")
    assert info.value.status_code == 403


def test_settings_travel_to_workers_through_the_environment(tmp_path, monkeypatch):
    run = fake_run(tmp_path)
    settings = ServeSettings.checked(run=str(run), backend="onnx", top_k=5, keep_images=True, max_files=3)
    monkeypatch.setenv(SETTINGS_ENV, settings.to_env())
    assert ServeSettings.from_env() == settings
    assert "key" not in settings.to_env().replace("api_key_file", "")  # the key itself never travels this way


def test_default_store_sits_in_the_run_or_beside_a_current_link(tmp_path):
    run = fake_run(tmp_path)
    assert ServeSettings.checked(run=str(run)).store_spec() == str(run / "feedback")
    link = tmp_path / "current"
    link.symlink_to(run)
    assert ServeSettings.checked(run=str(link)).store_spec() == str(tmp_path / "feedback")
    assert ServeSettings.checked(run=str(link), store="postgresql://h/db").store_spec() == "postgresql://h/db"


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(UserError, match="unknown serve setting 'colour'"):
        ServeSettings.checked(run=str(fake_run(tmp_path)), colour="blue")


def test_a_non_empty_metrics_folder_is_refused(tmp_path, monkeypatch, no_env):
    from contextlib import ExitStack

    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"old")
    monkeypatch.setenv(server.MULTIPROC_ENV, str(folder))
    with ExitStack() as stack, pytest.raises(UserError, match="is not empty"):
        server._prepare_multiprocess_metrics(stack)
    monkeypatch.delenv(server.MULTIPROC_ENV)
    with ExitStack() as stack:
        server._prepare_multiprocess_metrics(stack)
        made = os.environ[server.MULTIPROC_ENV]
        assert os.path.isdir(made) and not os.listdir(made)
    assert server.MULTIPROC_ENV not in os.environ and not os.path.exists(made)  # our own temporary folder, gone


@pytest.mark.slow
def test_onnx_backend_without_an_export_is_refused(digits_run, tmp_path, no_env):
    with pytest.raises(UserError, match="has no model.onnx export"):
        server.serve(digits_run, backend="onnx", store=str(tmp_path / "store"))
