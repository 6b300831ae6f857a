"""The service without HTTP, on untrained bundles: a service that cannot start says why and
recovers by itself once the model at RUN is loadable; a reload swaps models, keeping the old one
for the requests that started on it."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import make_bundle, point_link, wait_for

from imgclf.serve.http_errors import Refused
from imgclf.serve.service import Service
from imgclf.serve.settings import ServeSettings


def service_for(link, tmp_path) -> Service:
    return Service(ServeSettings.checked(run=str(link), store=str(tmp_path / "store"), backend="torch", watch_seconds=0), api_key=None)


def test_a_service_that_cannot_start_says_why_and_recovers(tmp_path):
    (tmp_path / "empty").mkdir()
    link = tmp_path / "current"
    point_link(link, tmp_path / "empty")  # promoted to a folder with no model (yet)
    service = service_for(link, tmp_path)
    try:
        service.start()
        assert not service.ready and "no model.json" in service.not_ready
        with pytest.raises(Refused) as info:
            with service.using_model():
                pass
        assert info.value.status == 503 and "not ready" in info.value.reason
        point_link(link, make_bundle(tmp_path / "good"))
        service.watch_once()  # what the background loop does every few seconds
        assert service.ready and service.model.classes == ["cat", "dog", "eel"]
    finally:
        service.close()


def test_reload_swaps_and_retires_the_old_model_after_its_requests(tmp_path):
    link = tmp_path / "current"
    point_link(link, make_bundle(tmp_path / "a", seed=0))
    service = service_for(link, tmp_path)
    service.start()
    try:
        first = service.model
        assert service.reload()["reloaded"] is False  # nothing changed
        with service.using_model() as held:
            point_link(link, make_bundle(tmp_path / "b", seed=1))
            service.watch_once()  # the watcher notices the moved link
            assert service.model is not first and service.model.version != first.version
            assert held is first and not first.batcher.closed
            assert held.batcher.submit(np.zeros((32, 32, 3), np.uint8)).result(30).shape == (3,)
        wait_for(lambda: first.batcher.closed, timeout=30)
    finally:
        service.close()
