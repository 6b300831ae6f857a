"""Drift through the service: darkened traffic is flagged by /v1/drift (and /metrics); traffic like
the training data is not.

The baseline holds digit images from one random half of the dataset; normal traffic comes from
the other half, so both sides are draws from one distribution. The false-alarm rate of the "not flagged" check is
bounded in tests/serve/test_drift.py's docstring (under 1.1% per check by the union bound over the
statistics, with the PSI condition far out at these window sizes); the images and the model are
fixed here, so the outcome is deterministic.
"""

from __future__ import annotations

import pytest
from serve_helpers import API_KEY, darkened, digit_halves, make_served_run, metric_value, ready_client

from imgclf.serve.app import create_app
from imgclf.serve.settings import ServeSettings

pytestmark = pytest.mark.slow  # the digits run is trained once per session


@pytest.fixture(scope="module")
def served_run(digits_run, tmp_path_factory):
    return make_served_run(digits_run, tmp_path_factory.mktemp("drift") / "run")


def client_for(run, tmp_path):
    settings = ServeSettings.checked(run=str(run), store=str(tmp_path / "store"), backend="torch", watch_seconds=0, drift_window=300)
    return ready_client(create_app(settings, api_key=API_KEY))


def send(client, images: list[bytes], per_request: int = 20) -> None:
    for i in range(0, len(images), per_request):
        files = [("file", (f"{j}.png", data, "image/png")) for j, data in enumerate(images[i : i + per_request])]
        assert client.post("/v1/predict", files=files).status_code == 200


def test_normal_traffic_is_not_flagged(served_run, tmp_path):
    client = client_for(served_run, tmp_path)
    try:
        send(client, digit_halves()[1][:300])
        report = client.get("/v1/drift").json()
        assert report["available"] is True
        assert report["statistics"]["brightness"]["n"] == 300
        assert report["drifted"] is False, report["drifted_statistics"]
        assert metric_value(client.get("/metrics").text, "imgclf_drift_flagged", {"statistic": "brightness"}) == 0
    finally:
        client.__exit__(None, None, None)


def test_darkened_traffic_is_flagged(served_run, tmp_path):
    client = client_for(served_run, tmp_path)
    try:
        send(client, [darkened(data) for data in digit_halves()[1][:300]])
        report = client.get("/v1/drift").json()
        assert report["drifted"] is True
        assert "brightness" in report["drifted_statistics"]
        brightness = report["statistics"]["brightness"]
        assert brightness["drifted"] and brightness["psi"] > 0.2 and brightness["ks_pvalue"] < 0.001
        text = client.get("/metrics").text
        assert metric_value(text, "imgclf_drift_flagged", {"statistic": "brightness"}) == 1
        assert metric_value(text, "imgclf_drift_psi", {"statistic": "brightness"}) == pytest.approx(brightness["psi"])
    finally:
        client.__exit__(None, None, None)


def test_too_little_traffic_is_never_flagged(served_run, tmp_path):
    client = client_for(served_run, tmp_path)
    try:
        send(client, [darkened(data) for data in digit_halves()[1][:20]])
        report = client.get("/v1/drift").json()
        assert report["drifted"] is False and report["statistics"]["brightness"].get("psi") is None  # below the minimum window
    finally:
        client.__exit__(None, None, None)
