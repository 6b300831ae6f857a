"""Hostile and broken input: random bytes, truncated images, huge dimensions, wrong content types,
oversized bodies. Every answer is a 4xx with a JSON reason, and the service still answers after.

In-process (Hypothesis drives the app through TestClient), then a short round against a real
uvicorn server, where bodies cross a socket and the limit applies to a streamed body too."""

from __future__ import annotations

import io

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from serve_helpers import API_KEY, AUTH, ServerProcess, digit_pngs, make_served_run, ready_client
from synth import encode, oversized_png_header, random_bytes, shape_image, truncated_jpeg

from imgclf.serve.app import create_app
from imgclf.serve.settings import ServeSettings

pytestmark = pytest.mark.slow  # the digits run is trained once per session

LIMIT = 256 * 1024  # a small body limit, so oversized bodies are cheap to send
MAX_PIXELS = 4_000_000


@pytest.fixture(scope="module")
def served_run(digits_run, tmp_path_factory):
    return make_served_run(digits_run, tmp_path_factory.mktemp("hardening") / "run", baseline=False)


@pytest.fixture(scope="module")
def client(served_run, tmp_path_factory):
    settings = ServeSettings.checked(run=str(served_run), store=str(tmp_path_factory.mktemp("store") / "s"), watch_seconds=0,
                                     max_upload_bytes=LIMIT, max_pixels=MAX_PIXELS, max_files=4)  # fmt: skip
    c = ready_client(create_app(settings, api_key=API_KEY))
    yield c
    c.__exit__(None, None, None)


def assert_refused(r, *statuses):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if statuses:
        assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def png_bytes(width: int, height: int) -> bytes:
    return encode(Image.new("RGB", (width, height), (40, 90, 200)), "PNG")


@given(data=st.binary(min_size=0, max_size=4096), as_multipart=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_are_refused_with_a_reason(client, data, as_multipart):
    if as_multipart:
        r = client.post("/v1/predict", files={"file": ("x.jpg", data, "image/jpeg")})
    else:
        r = client.post("/v1/predict", content=data, headers={"content-type": "application/octet-stream"})
    if r.status_code == 200:  # Hypothesis found bytes that really are an image: fine, and rare
        Image.open(io.BytesIO(data)).load()
        return
    assert_refused(r, 413, 415, 422)


@given(cut=st.floats(min_value=0.05, max_value=0.95), fmt=st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP"]))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_truncated_images_are_refused(client, cut, fmt):
    full = encode(shape_image("circle", 64, seed=3), fmt)
    r = client.post("/v1/predict", content=full[: max(1, int(len(full) * cut))], headers={"content-type": "image/png"})
    if r.status_code == 200:  # some formats decode from a prefix (e.g. a GIF's first frame): never a 5xx
        return
    detail = assert_refused(r, 415, 422)
    assert any(w in detail for w in ("truncated", "corrupt", "not an image", "zero size", "empty"))


def test_named_broken_inputs(client):
    assert "truncated" in assert_refused(client.post("/v1/predict", files={"file": ("t.jpg", truncated_jpeg(), "image/jpeg")}), 422)
    assert "not an image" in assert_refused(client.post("/v1/predict", files={"file": ("r.png", random_bytes(), "image/png")}), 415)
    assert "empty" in assert_refused(client.post("/v1/predict", content=b"", headers={"content-type": "image/png"}), 422)
    bomb = oversized_png_header(50_000, 50_000)
    detail = assert_refused(client.post("/v1/predict", content=bomb, headers={"content-type": "image/png"}), 413)
    assert "too large" in detail
    # Over this service's pixel limit, though a normal image: 413 too.
    assert_refused(client.post("/v1/predict", content=png_bytes(2100, 2000), headers={"content-type": "image/png"}), 413)


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "application/x-www-form-urlencoded", "text/html; charset=utf-8"])
def test_wrong_content_types_are_415(client, ctype):
    _, data = digit_pngs(0, 1)[0]
    assert "multipart/form-data" in assert_refused(client.post("/v1/predict", content=data, headers={"content-type": ctype}), 415)


def test_oversized_bodies_are_413_declared_or_streamed(client):
    big = b"\x89PNG" + bytes(LIMIT + 10)
    assert "larger than" in assert_refused(client.post("/v1/predict", content=big, headers={"content-type": "image/png"}), 413)

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(40):
            yield bytes(16 * 1024)

    assert_refused(client.post("/v1/predict", content=chunks(), headers={"content-type": "image/png"}), 413)
    files = [("file", (f"{i}.png", bytes(100 * 1024), "image/png")) for i in range(3)]
    assert_refused(client.post("/v1/feedback", data={"label": "1"}, files=files, headers=AUTH), 413)


def test_too_many_files_and_no_files(client):
    _, data = digit_pngs(0, 1)[0]
    five = [("file", (f"{i}.png", data, "image/png")) for i in range(5)]
    assert "at most 4" in assert_refused(client.post("/v1/predict", files=five), 413)
    assert "at least one image" in assert_refused(client.post("/v1/predict", files={"note": (None, "no file")}), 422)


def test_one_bad_file_refuses_the_whole_request_naming_it(client):
    _, data = digit_pngs(0, 1)[0]
    r = client.post("/v1/predict", files=[("file", ("good.png", data, "image/png")), ("file", ("bad.png", b"junk", "image/png"))])
    assert "bad.png" in assert_refused(r, 415)


def test_client_strings_never_become_paths(client):
    for pid in ("..", "../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "a" * 300):
        r = client.get(f"/v1/review/{pid}/image", headers=AUTH)
        assert r.status_code in (404, 422) and isinstance(r.json()["detail"], str)
    assert client.get("/v1/feedback/..%2F..%2Ffeedback.sqlite", headers=AUTH).status_code in (404, 422)


def test_service_answers_after_the_abuse(client):
    assert client.get("/v1/health").status_code == 200
    _, data = digit_pngs(5, 1)[0]
    assert client.post("/v1/predict", content=data, headers={"content-type": "image/png"}).status_code == 200


def test_real_server_refuses_abuse_and_stays_up(served_run, tmp_path):
    store = tmp_path / "store"
    with ServerProcess(served_run, store, "--max-upload-mb", "0.25") as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            cases = [
                dict(content=random_bytes(5000, seed=1), headers={"content-type": "image/jpeg"}),
                dict(content=truncated_jpeg(), headers={"content-type": "image/jpeg"}),
                dict(content=oversized_png_header(70_000, 70_000), headers={"content-type": "image/png"}),
                dict(content=b"{}", headers={"content-type": "application/json"}),
                dict(files={"file": ("x.png", b"\x00" * 10, "image/png")}),
                dict(content=bytes(300 * 1024), headers={"content-type": "image/png"}),
                dict(content=iter([bytes(64 * 1024)] * 5), headers={"content-type": "image/png"}),
            ]
            for case in cases:
                assert_refused(http.post("/v1/predict", **case))
            assert http.get("/v1/health").status_code == 200
            _, data = digit_pngs(9, 1)[0]
            assert http.post("/v1/predict", content=data, headers={"content-type": "image/png"}).status_code == 200
