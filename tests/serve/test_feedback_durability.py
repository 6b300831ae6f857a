"""Every acknowledged feedback survives SIGKILL: flood feedback over HTTP, kill the server (every
process, no shutdown code), restart it on the same store, and find every acknowledged record and
its image, byte for byte."""

from __future__ import annotations

import hashlib
import threading

import httpx
import pytest
from serve_helpers import AUTH, ServerProcess, make_served_run, noise_png, wait_for

from imgclf.serve.store import open_store

pytestmark = pytest.mark.slow  # trains (once per session) and starts real servers


def test_acknowledged_feedback_survives_sigkill(digits_run, tmp_path):
    run = make_served_run(digits_run, tmp_path / "run", baseline=False)
    store = tmp_path / "store"
    acknowledged: list[tuple[str, str, str]] = []  # (feedback id, label, sha256 of the image sent)
    failures: list[str] = []

    server = ServerProcess(run, store, workers=2)
    server.wait_ready(workers=2)

    def flood(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(10_000):
                image = noise_png(worker * 100_000 + i, size=24)
                label = str(i % 10)
                try:
                    r = http.post("/v1/feedback", data={"label": label, "note": f"flood {worker}/{i}"},
                                  files={"file": (f"{i}.png", image, "image/png")}, headers=AUTH)  # fmt: skip
                except httpx.TransportError:
                    return  # the server is gone: this request was never acknowledged
                if r.status_code != 200:
                    failures.append(r.text)
                    return
                acknowledged.append((r.json()["id"], label, hashlib.sha256(image).hexdigest()))

    threads = [threading.Thread(target=flood, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 150, timeout=120)
    server.kill()  # mid-flood: requests are in flight in both workers
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    acked = list(acknowledged)

    with ServerProcess(run, store) as restarted:
        restarted.wait_ready()
        with httpx.Client(base_url=restarted.url, timeout=30) as http:
            for feedback_id, label, sha in acked:
                r = http.get(f"/v1/feedback/{feedback_id}", headers=AUTH)
                assert r.status_code == 200, (feedback_id, r.text)
                assert (r.json()["label"], r.json()["image_sha256"]) == (label, sha)
    with open_store(store) as s:
        for _, _, sha in acked:
            assert hashlib.sha256(s.image(sha)).hexdigest() == sha  # the image file is complete
        assert len(s.feedback()) >= len(acked)
