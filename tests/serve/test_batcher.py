"""Micro-batching: concurrent submissions run together, in order, at most max_batch at a time."""

from __future__ import annotations

import threading

import pytest

from imgclf.serve.batcher import BatcherClosed, MicroBatcher


class Recorder:
    """A batch function that remembers each batch and can be held until released."""

    def __init__(self):
        self.batches: list[list] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items):
        self.entered.set()
        self.gate.wait(30)
        self.batches.append(list(items))
        return [x * 10 for x in items]


def test_one_item_alone_is_answered():
    fn = Recorder()
    b = MicroBatcher(fn, max_batch=8, max_wait_s=0.001)
    try:
        assert b.submit(4).result(10) == 40
        assert fn.batches == [[4]]
    finally:
        b.close()


def test_items_queued_while_a_batch_runs_form_the_next_batch_in_order():
    fn = Recorder()
    b = MicroBatcher(fn, max_batch=8, max_wait_s=0.0)
    try:
        fn.gate.clear()
        first = b.submit(0)
        assert fn.entered.wait(10)  # the worker is busy with [0]
        futures = [b.submit(i) for i in range(1, 21)]  # 20 more arrive meanwhile
        fn.gate.set()
        assert [f.result(10) for f in futures] == [10 * i for i in range(1, 21)]
        assert first.result(10) == 0
        assert fn.batches[0] == [0]
        assert [len(x) for x in fn.batches[1:]] == [8, 8, 4]  # full batches, never more than max_batch
        assert [x for batch in fn.batches for x in batch] == list(range(21))
        assert (b.batches, b.items) == (4, 21)
    finally:
        b.close()


def test_concurrent_submitters_share_batches():
    fn = Recorder()
    b = MicroBatcher(fn, max_batch=64, max_wait_s=0.05)
    results = {}

    def client(i):
        results[i] = b.submit(i).result(30)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == {i: 10 * i for i in range(32)}
        assert len(fn.batches) < 32  # some requests were answered together
    finally:
        b.close()


def test_submit_many_keeps_a_request_together_and_ordered():
    fn = Recorder()
    b = MicroBatcher(fn, max_batch=16, max_wait_s=0.0)
    try:
        futures = b.submit_many([3, 1, 2])
        assert [f.result(10) for f in futures] == [30, 10, 20]
    finally:
        b.close()


def test_an_error_reaches_every_item_of_the_batch_and_the_batcher_goes_on():
    calls = []

    def fn(items):
        calls.append(list(items))
        if -1 in items:
            raise ValueError("bad batch")
        return items

    b = MicroBatcher(fn, max_batch=4, max_wait_s=0.0)
    try:
        futures = b.submit_many([1, -1])
        for f in futures:
            with pytest.raises(ValueError, match="bad batch"):
                f.result(10)
        assert b.submit(5).result(10) == 5
    finally:
        b.close()


def test_a_wrong_number_of_results_is_an_error_not_a_misaligned_answer():
    b = MicroBatcher(lambda items: items[:-1], max_batch=4, max_wait_s=0.0)
    try:
        with pytest.raises(RuntimeError, match="1 results for 2 items"):
            b.submit_many([1, 2])[0].result(10)
    finally:
        b.close()


def test_close_finishes_queued_items_then_refuses_new_ones():
    fn = Recorder()
    b = MicroBatcher(fn, max_batch=2, max_wait_s=0.0)
    fn.gate.clear()
    first = b.submit(1)
    assert fn.entered.wait(10)
    queued = [b.submit(i) for i in (2, 3, 4)]
    closer = threading.Thread(target=b.close)
    closer.start()
    fn.gate.set()
    closer.join(30)
    assert first.result(1) == 10 and [f.result(1) for f in queued] == [20, 30, 40]
    assert b.closed
    with pytest.raises(BatcherClosed):
        b.submit(5)
