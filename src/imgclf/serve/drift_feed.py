"""Feeding the drift monitor off the request path, at a bounded cost.

Answered images go to a background thread that computes their statistics many at a time
(:func:`imgclf.data.image_stats.batch_image_stats`, vectorised) and adds them to the monitor's
windows. Two bounds keep monitoring from slowing serving down:

- CPU: after each batch the thread rests so that it is busy at most ``cpu_share`` of the time
  (a request for the scores cuts the rests short: it waits for everything queued before it).
  Measured on the 2-core dev machine (busy, so roughly): the statistics cost ~0.5 ms per 32 px
  image one by one and ~0.1 ms in batches of 256, but several ms per 224 px image, as much as a
  small model's inference; unbounded, they would halve such a model's throughput under load.
- memory: when more images wait than one window holds, new ones are dropped (counted in
  ``dropped``): the window is a sample of recent traffic either way.

Under light traffic every image is observed; under heavy traffic a steady sample is.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..data.image_size import upright_size
from .batcher import MicroBatcher
from .drift import DriftMonitor
from .uploads import DecodedImage

CPU_SHARE = 0.1
MAX_BATCH = 256
MAX_WAIT_S = 0.05
MAX_REST_S = 5.0


class DriftFeed:
    def __init__(self, monitor: DriftMonitor, *, cpu_share: float = CPU_SHARE):
        self.monitor = monitor
        self.cpu_share = cpu_share
        self.dropped = 0
        self._limit = monitor.window
        self._flushing = 0  # scores() calls waiting: no resting meanwhile
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._batcher = MicroBatcher(self._observe, max_batch=MAX_BATCH, max_wait_s=MAX_WAIT_S, name="drift")

    def submit(self, images: list[DecodedImage], confidences: list[float]) -> None:
        """Queue answered images for the monitor; returns at once (nothing waits for drift)."""
        if self._batcher.pending + len(images) > self._limit:
            self.dropped += len(images)
            return
        self._batcher.submit_many([(d.data, d.pixels, float(c)) for d, c in zip(images, confidences)])

    def scores(self, timeout: float = 60.0) -> dict:
        """The monitor's scores once every image queued so far has been observed."""
        with self._lock:
            self._flushing += 1
        self._wake.set()
        try:
            self._batcher.submit(None).result(timeout)  # a marker: the queue is first in, first out
        finally:
            with self._lock:
                self._flushing -= 1
        return {**self.monitor.scores(), "dropped": self.dropped}

    def close(self, timeout: float | None = None) -> None:
        self._batcher.close(timeout)

    def _observe(self, items: list) -> list[None]:
        started = time.perf_counter()
        real = [item for item in items if item is not None]
        if real:
            # The original upright size from the header, measured as the training-time baseline is.
            sizes = [upright_size(data) or (pixels.shape[1], pixels.shape[0]) for data, pixels, _ in real]
            self.monitor.observe_images(np.stack([pixels for _, pixels, _ in real]), sizes, [c for _, _, c in real])
            rest = min(MAX_REST_S, (time.perf_counter() - started) * (1 - self.cpu_share) / self.cpu_share)
            if not self._flushing:
                self._wake.wait(rest)
            self._wake.clear()
        return [None] * len(items)
