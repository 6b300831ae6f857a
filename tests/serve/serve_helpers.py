"""Helpers for the service tests: a served copy of the digits run, digit images, and real servers
(`imgclf serve` in a subprocess on a free loopback port)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

API_KEY = "test-key-0123456789"
AUTH = {"X-API-Key": API_KEY}


def digit_pngs(start: int = 0, count: int = 10, step: int = 1) -> list[tuple[str, bytes]]:
    """(name, PNG bytes) of scikit-learn's digits, as the run's training data saw them."""
    from imgclf.predict import builtin_inputs

    items = builtin_inputs("builtin:digits")
    return items[start : start + count * step : step]


def digit_halves(seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """Digit images split at random into two disjoint halves: draws from one distribution. (Not
    even/odd positions: scikit-learn's digits cycle 0-9, so those halves would hold different digits.)"""
    items = [data for _, data in digit_pngs(0, 2000)]
    order = np.random.default_rng(seed).permutation(len(items))
    half = len(items) // 2
    return [items[i] for i in order[:half]], [items[i] for i in order[half:]]


def darkened(png: bytes, factor: float = 0.35) -> bytes:
    """The same image with every pixel scaled by ``factor`` (an under-exposed camera)."""
    arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr * factor, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def noise_png(seed: int, size: int = 32) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def drift_baseline(run: Path, images: list[bytes]) -> dict:
    """The baseline for ``run`` computed as the service measures live traffic: the statistics of
    the model's fitted pixels with the original sizes, and the model's confidence."""
    from imgclf.data.image_size import upright_size
    from imgclf.data.image_stats import batch_image_stats, compute_baseline
    from imgclf.predict import load
    from imgclf.serve.uploads import Upload, decode_upload

    predictor = load(run, backend="torch")  # the precision the service runs (auto), so confidences compare like with like
    decoded = [decode_upload(Upload(f"b{i}", data), predictor.preprocess, 10**8) for i, data in enumerate(images)]
    pixels = np.stack([d.pixels for d in decoded])
    sizes = [upright_size(d.data) for d in decoded]
    return compute_baseline(batch_image_stats(pixels, sizes), predictor.probabilities(pixels).max(axis=1))


def perturbed_copy(run: Path, dest: Path, scale: float = 0.05, seed: int = 0) -> Path:
    """A copy of ``run`` with noise added to its weights: another model version, still a digits model."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    out = Path(shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "feedback")))
    weights = out / "model" / "model.safetensors"
    tensors = load_file(weights)
    g = torch.Generator().manual_seed(seed)
    # Conv and linear weights only: noise on normalisation statistics could make a variance negative.
    noisy = {k: (v + scale * v.std() * torch.randn(v.shape, generator=g) if k.endswith(".weight") and v.dim() > 1 else v)
             for k, v in tensors.items()}  # fmt: skip
    save_file(noisy, weights)
    return out


def point_link(link: Path, target: Path) -> None:
    """Make ``link`` point at ``target`` atomically (a new link renamed over the old one), as a
    promotion would: a reader sees the old target or the new one, never no link."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def make_served_run(digits_run: Path, dest: Path, *, all_unsure: bool = True, baseline: bool = True) -> Path:
    """A private copy of the digits run, made ready to serve: every answer unsure (so the review
    queue fills) and a drift baseline from one random half of the digit images (traffic: the other)."""
    import shutil

    from imgclf.inference.bundle import update_bundle_meta
    from imgclf.runs import write_json
    from imgclf.serve.loaded_model import BASELINE_FILE

    run = Path(shutil.copytree(digits_run, dest, ignore=shutil.ignore_patterns("checkpoints", "feedback")))
    if all_unsure:
        update_bundle_meta(run / "model", {"unsure_threshold": None})  # evaluated, no threshold: review everything
    if baseline:
        images = digit_halves()[0][:600]
        write_json(run / "model" / BASELINE_FILE, drift_baseline(run, images))
    elif (run / "model" / BASELINE_FILE).exists():
        (run / "model" / BASELINE_FILE).unlink()  # a run trained by an older imgclf
    return run


BUNDLE_CLASSES = ["cat", "dog", "eel"]


def make_bundle(run: Path, seed: int = 0) -> Path:
    """A run holding only an untrained RGB simple_cnn bundle: a servable model with no training."""
    import torch

    from imgclf.inference.bundle import save_bundle
    from imgclf.models.factory import create_model

    torch.manual_seed(seed)
    save_bundle(create_model("simple_cnn", len(BUNDLE_CLASSES)), run / "model", architecture="simple_cnn",
                classes=BUNDLE_CLASSES, preprocess={"img_size": 32})  # fmt: skip
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`imgclf serve RUN ...` in a subprocess on a free loopback port; ``kill()`` sends SIGKILL."""

    def __init__(self, run: Path, store: Path | str, *args: str, workers: int = 1, log: Path | None = None, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log or Path(str(store) + f".server-{self.port}.log")
        cmd = [sys.executable, "-m", "imgclf", "serve", str(run), "--port", str(self.port), "--store", str(store),
               "--workers", str(workers), *args]  # fmt: skip
        full_env = {**os.environ, "IMGCLF_API_KEY": API_KEY, **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = open(self.log_path, "wb")
        # A session of its own, so SIGKILL reaches the uvicorn parent and every worker at once.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0, workers: int = 1) -> None:
        """Until /v1/ready answers 200 (from ``workers`` distinct processes when more than one)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                r = httpx.get(self.url + "/v1/ready", timeout=5)
                if r.status_code == 200:
                    seen.add(r.headers["x-imgclf-worker"])
                    if len(seen) >= workers:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the server did not become ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs (a power cut, for the process)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def ready_client(app) -> "object":
    """A started TestClient for ``app`` whose model is in service."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    client.__enter__()
    wait_for(lambda: client.get("/v1/ready").status_code == 200, timeout=120)
    return client


def metric_value(text: str, name: str, labels: dict | None = None) -> float:
    """The value of one sample in Prometheus text (0.0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return 0.0


def as_json(response) -> dict:
    try:
        return response.json()
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON ({response.status_code}): {response.text[:200]}") from None
