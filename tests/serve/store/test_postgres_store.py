"""PostgreSQL: several servers on one database share records, images and the review queue."""

from __future__ import annotations

import threading

import pytest

from imgclf.errors import UserError
from imgclf.serve.store import open_store

TOPK = [{"label": "cat", "probability": 0.5}]


def test_two_servers_share_records_and_images(postgres_url):
    with open_store(postgres_url) as a, open_store(postgres_url) as b:
        p = a.record_prediction(b"image from server a", model_version="m@1", topk=TOPK, unsure=True)
        # Server b sees a's queued item and its image (bytea, not a file on a's disk) and decides it.
        assert [item.prediction.id for item in b.next_for_review()] == [p.id]
        assert b.image(p.image_sha256) == b"image from server a"
        f = b.decide(p.id, "dog", reviewer="ann")
        assert a.get_feedback(f.id) == f
        assert a.counts() == b.counts()


def test_servers_racing_on_one_review_item_decide_it_once(postgres_url):
    stores = [open_store(postgres_url, max_connections=2) for _ in range(3)]
    try:
        p = stores[0].record_prediction(b"contested", model_version="m@1", topk=TOPK, unsure=True)
        barrier, outcomes = threading.Barrier(6), []

        def reviewer(i: int) -> None:
            barrier.wait()
            try:
                stores[i % 3].decide(p.id, f"label{i}", reviewer=f"r{i}")
                outcomes.append("won")
            except UserError:
                outcomes.append("refused")

        threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["refused"] * 5 + ["won"]
        assert stores[1].counts().feedback_by_source["review"] == 1
    finally:
        for s in stores:
            s.close()


def test_servers_opening_a_new_database_at_once_create_one_schema(postgres_url):
    stores, errors = [], []

    def start() -> None:
        try:
            stores.append(open_store(postgres_url, max_connections=1))
        except Exception as exc:  # noqa: BLE001 - any failure to open is the bug under test
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(stores) == 4
        with stores[0]._read() as cur:
            cur.execute("SELECT COUNT(*) FROM schema_version")
            assert cur.fetchone()[0] == 1
    finally:
        for s in stores:
            s.close()


def test_an_unreachable_server_is_one_sentence_without_the_password(postgres_url):
    bad = "postgresql://imgclf:s3cret-pw@127.0.0.1:1/nodb"
    with pytest.raises(UserError) as info:
        open_store(bad)
    message = str(info.value)
    assert "cannot connect" in message and "127.0.0.1:1" in message and "s3cret-pw" not in message
