"""Two worker processes behind one port: /metrics adds up both workers' counts whichever answers
the scrape (prometheus-client's multiprocess mode), and `imgclf monitor` reads the service."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from serve_helpers import ServerProcess, digit_halves, make_served_run, metric_value

from imgclf.cli import cli

pytestmark = pytest.mark.slow  # trains (once per session) and starts a real server


def test_metrics_are_summed_over_two_workers(digits_run, tmp_path):
    run = make_served_run(digits_run, tmp_path / "run")
    images = digit_halves()[1][:400]
    with ServerProcess(run, tmp_path / "store", workers=2) as server:
        server.wait_ready(workers=2)
        workers: dict[str, int] = {}
        sent = 0
        while len(workers) < 2 or sent < 60:
            assert sent < 400, f"only worker(s) {sorted(workers)} answered {sent} requests"
            with httpx.Client(base_url=server.url, timeout=60) as http:  # a new connection each time
                r = http.post("/v1/predict", content=images[sent], headers={"content-type": "image/png"})
            assert r.status_code == 200, r.text
            workers[r.headers["x-imgclf-worker"]] = workers.get(r.headers["x-imgclf-worker"], 0) + 1
            sent += 1

        scraped_by = set()
        for _ in range(12):  # several scrapes: whichever worker answers, the totals are the service's
            with httpx.Client(base_url=server.url, timeout=60) as http:
                r = http.get("/metrics")
            scraped_by.add(r.headers["x-imgclf-worker"])
            text = r.text
            assert metric_value(text, "imgclf_images_predicted_total") == sent
            assert metric_value(text, "imgclf_http_requests_total", {"route": "/v1/predict", "status": "200"}) == sent
            assert metric_value(text, "imgclf_prediction_confidence_count") == sent
            assert sum(metric_value(text, "imgclf_predicted_class_total", {"label": str(d)}) for d in range(10)) == sent
            assert metric_value(text, "imgclf_store_predictions") == sent
        assert len(workers) == 2 and all(n >= 1 for n in workers.values())

        result = CliRunner().invoke(cli, ["monitor", server.url, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["drift"]["available"] is True and report["info"]["classes"] == [str(d) for d in range(10)]
        assert report["drift"]["worker"] in {int(w) for w in workers}
        text = CliRunner().invoke(cli, ["monitor", server.url]).output
        assert "brightness" in text and "none flagged" in text
