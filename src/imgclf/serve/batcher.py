"""Micro-batching: items submitted one at a time by many requests run through ``fn`` together.

One worker thread per batcher takes the first waiting item, then keeps collecting for at most
``max_wait_s`` (or until ``max_batch`` items) and calls ``fn`` once on the whole batch. Under load
the queue refills while a batch runs, so batches fill without waiting at all and throughput
approaches ``fn``'s batch throughput; when traffic is light a lone request waits ``max_wait_s``
at most. The service uses two: the model (pixels -> probabilities) and the store (answers -> one
transaction, so N concurrent predictions cost one fsync instead of N).

Callers get a :class:`concurrent.futures.Future` (``asyncio.wrap_future`` it in async code).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class BatcherClosed(RuntimeError):
    """Submitted to a batcher that has been closed."""


class MicroBatcher(Generic[T, R]):
    """Run ``fn(list_of_items) -> list_of_results`` (same length, same order) on batches of items."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32, max_wait_s: float = 0.003, name: str = "batcher"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches = 0  # how many times fn ran, and on how many items: for tests and /v1/info
        self.items = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future:
        """Queue one item; its Future gets ``fn``'s result for it (or the exception ``fn`` raised)."""
        return self.submit_many([item])[0]

    def submit_many(self, items: Sequence[T]) -> list[Future]:
        """Queue several items at once (one request's images), in order."""
        futures = [Future() for _ in items]
        with self._lock:  # no item may slip in behind the stop marker
            if self._closed:
                raise BatcherClosed("this batcher is closed")
            for item, fut in zip(items, futures):
                self._queue.put((item, fut))
        return futures

    def close(self, timeout: float | None = None) -> None:
        """Stop taking items; those already queued still run. Waits for the worker to finish."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Items queued and not yet taken into a batch (approximate while others submit)."""
        return self._queue.qsize()

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True  # finish this batch, then stop
                    break
                batch.append(entry)
            self._run(batch)

    def _run(self, batch: list) -> None:
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = list(self.fn([item for item, _ in live]))
            if len(results) != len(live):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch hears why
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(live)
        for (_, fut), result in zip(live, results):
            fut.set_result(result)
