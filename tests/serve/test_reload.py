"""A new model goes into service without downtime: loaded beside the old one, then swapped; requests
that started on the old model finish on it; a `current` link moved to another run is followed."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from serve_helpers import AUTH, ServerProcess, digit_pngs, make_served_run, perturbed_copy, point_link, wait_for

from imgclf.serve.service import Service
from imgclf.serve.settings import ServeSettings

pytestmark = pytest.mark.slow  # the digits run is trained once per session


@pytest.fixture(scope="module")
def runs(digits_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("reload")
    a = make_served_run(digits_run, root / "run-a", baseline=False)
    b = perturbed_copy(a, root / "run-b")
    broken = perturbed_copy(a, root / "run-broken")
    (broken / "model" / "model.json").write_text("{ not json")
    return root, a, b, broken


def test_in_flight_requests_finish_on_the_old_model(runs, tmp_path):
    root, a, b, _ = runs
    link = tmp_path / "current"
    point_link(link, a)
    service = Service(ServeSettings.checked(run=str(link), store=str(tmp_path / "store"), watch_seconds=0), api_key=None)
    service.start()
    try:
        assert service.ready
        with service.using_model() as old:
            pixels = np.zeros(old.predictor.preprocess.shape, np.uint8)  # (32, 32, channels)  # a request that started before the reload
            point_link(link, b)
            result = service.reload()
            assert result["reloaded"] is True and result["previous_version"] == old.version
            assert service.model is not old and service.model.version == result["model_version"] != old.version
            time.sleep(0.2)
            assert not old.batcher.closed  # still in use: not retired
            assert len(old.batcher.submit(pixels).result(30)) == 10  # and still answers
        wait_for(lambda: old.batcher.closed, timeout=30)  # retired once its last request finished
        assert service.reload()["reloaded"] is False  # nothing changed since
    finally:
        service.close()


def test_a_model_that_cannot_load_leaves_the_current_one_serving(runs, tmp_path):
    root, a, _, broken = runs
    link = tmp_path / "current"
    point_link(link, a)
    service = Service(ServeSettings.checked(run=str(link), store=str(tmp_path / "store"), watch_seconds=0), api_key=None)
    service.start()
    try:
        before = service.model
        point_link(link, broken)
        from imgclf.serve.http_errors import Refused

        with pytest.raises(Refused) as info:
            service.reload()
        assert info.value.status == 409 and "stays" in info.value.reason
        assert service.model is before and not before.batcher.closed
        service.watch_once()  # the watcher logs it and keeps the old model too
        assert service.model is before
    finally:
        service.close()


def test_reload_over_http_without_downtime_and_the_link_is_followed(runs, tmp_path):
    root, a, b, _ = runs
    link = tmp_path / "current"
    point_link(link, a)
    images = [data for _, data in digit_pngs(100, 8)]
    with ServerProcess(link, tmp_path / "store", "--watch", "0.5") as server:
        server.wait_ready()
        version_a = httpx.get(server.url + "/v1/ready").json()["model_version"]
        answers: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def client(i):
            with httpx.Client(base_url=server.url, timeout=60) as http:
                while not stop.is_set():
                    r = http.post("/v1/predict", content=images[i % len(images)], headers={"content-type": "image/png"})
                    answers.append((r.status_code, r.json().get("model_version")))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(answers) >= 20, timeout=60)
            point_link(link, b)
            r = httpx.post(server.url + "/v1/admin/reload", headers=AUTH, timeout=120)
            assert r.status_code == 200, r.text
            body = r.json()
            version_b = body["model_version"]
            assert version_b != version_a and version_b.startswith("run-b@")
            if body["reloaded"]:  # the call swapped the model
                assert body["previous_version"] == version_a
            else:  # the watcher (every 0.5 s) followed the link first; the call found nothing new
                assert body["previous_version"] == version_b
            n_at_swap = len(answers)
            wait_for(lambda: len(answers) >= n_at_swap + 20, timeout=60)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:5]
        versions = [v for _, v in answers]
        assert set(versions) == {version_a, version_b}
        assert versions[-1] == version_b and versions[0] == version_a

        # No reload call this time: the watcher follows the link back to run A.
        point_link(link, a)
        wait_for(lambda: httpx.get(server.url + "/v1/ready").json()["model_version"] == version_a, timeout=60)
        assert httpx.post(server.url + "/v1/admin/reload").status_code == 401  # admin needs the key
