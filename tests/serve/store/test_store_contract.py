"""What every feedback store does, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import threading

import pytest
from synth import encode, shape_image

from imgclf.errors import UserError
from imgclf.serve.store import LABELLED, SKIP, SKIPPED, SOURCE_REVIEW, SOURCE_USER, NewPrediction, open_store

TOPK = [{"label": "circle", "probability": 0.45}, {"label": "square", "probability": 0.35}]


def png(seed: int) -> bytes:
    return encode(shape_image("circle", 24, seed=seed), "PNG")


def predict(store, seed: int, unsure: bool, **kw):
    return store.record_prediction(png(seed), model_version="demo@1", topk=TOPK, unsure=unsure, **kw)


def test_new_store_has_current_schema_and_survives_reopen(store_spec):
    with open_store(store_spec) as s:
        assert s.schema_version() == 1
        p = predict(s, 1, unsure=True)
    with open_store(store_spec) as s:
        assert s.get_prediction(p.id) == p
        assert s.image(p.image_sha256) == png(1)


def test_prediction_round_trips_and_unsure_ones_enter_the_queue(store):
    sure = predict(store, 1, unsure=False)
    unsure = predict(store, 2, unsure=True)
    assert store.get_prediction(sure.id) == sure
    assert sure.image_sha256 == hashlib.sha256(png(1)).hexdigest() and sure.image_kept
    assert sure.confidence == pytest.approx(0.45) and sure.top_label == "circle"
    queue = store.next_for_review(10)
    assert [item.prediction.id for item in queue] == [unsure.id]
    assert queue[0].state == "queued" and queue[0].prediction.topk == TOPK
    assert store.image(queue[0].prediction.image_sha256) == png(2)


def test_unsure_images_are_kept_even_when_keep_image_is_false(store):
    sure = predict(store, 1, unsure=False, keep_image=False)
    unsure = predict(store, 2, unsure=True, keep_image=False)
    assert not sure.image_kept and not store.has_image(sure.image_sha256)
    assert unsure.image_kept and store.has_image(unsure.image_sha256)


def test_batch_of_predictions_is_stored_in_one_call(store):
    items = [NewPrediction(png(i), "demo@1", TOPK, unsure=i % 2 == 0) for i in range(6)]
    stored = store.record_predictions(items)
    assert len({p.id for p in stored}) == 6
    assert all(store.get_prediction(p.id) == p for p in stored)
    assert store.counts().review_queue == 3


def test_review_queue_is_oldest_first_and_decisions_leave_it(store):
    first, second, third = (predict(store, i, unsure=True) for i in range(3))
    assert [i.prediction.id for i in store.next_for_review(2)] == [first.id, second.id]
    feedback = store.decide(first.id, "square", reviewer="ann", note="clearly a square")
    assert feedback.source == SOURCE_REVIEW and feedback.label == "square" and feedback.who == "ann"
    assert feedback.prediction_id == first.id and feedback.predicted_label == "circle"
    assert feedback.predicted_probability == pytest.approx(0.45) and feedback.model_version == "demo@1"
    assert feedback.image_sha256 == first.image_sha256 and feedback.note == "clearly a square"
    assert store.decide(second.id, SKIP, reviewer="ann") is None
    assert [i.prediction.id for i in store.next_for_review(10)] == [third.id]
    assert store.review_item(first.id).state == LABELLED and store.review_item(first.id).reviewer == "ann"
    assert store.review_item(second.id).state == SKIPPED
    assert [f.id for f in store.feedback()] == [feedback.id]  # a skip is not feedback


def test_an_item_is_decided_once(store):
    p = predict(store, 1, unsure=True)
    store.decide(p.id, "circle", reviewer="ann")
    with pytest.raises(UserError, match="already reviewed"):
        store.decide(p.id, "square", reviewer="bob")
    sure = predict(store, 2, unsure=False)
    with pytest.raises(UserError, match="not in the review queue"):
        store.decide(sure.id, "square", reviewer="bob")
    with pytest.raises(UserError, match="not a prediction id"):
        store.decide("../../etc/passwd", "square", reviewer="bob")
    assert len(store.feedback()) == 1


def test_concurrent_decisions_on_one_item_let_exactly_one_win(store):
    p = predict(store, 1, unsure=True)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def reviewer(i: int) -> None:
        barrier.wait()
        try:
            store.decide(p.id, f"label{i}", reviewer=f"r{i}")
            outcomes.append("won")
        except UserError:
            outcomes.append("refused")

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["won"]
    assert len(store.feedback()) == 1


def test_user_feedback_by_prediction_id_keeps_the_original_prediction(store):
    p = predict(store, 1, unsure=False)
    f = store.add_feedback("triangle", who="bob", prediction_id=p.id, note="wrong shape")
    assert (f.source, f.label, f.who, f.note) == (SOURCE_USER, "triangle", "bob", "wrong shape")
    assert (f.prediction_id, f.predicted_label, f.topk, f.image_sha256) == (p.id, "circle", TOPK, p.image_sha256)
    assert store.get_feedback(f.id) == f


def test_user_feedback_with_only_an_image_stores_the_image(store):
    data = png(7)
    f = store.add_feedback("square", image=data)
    assert f.prediction_id is None and f.predicted_label is None and f.who == "anonymous"
    assert store.image(f.image_sha256) == data


def test_feedback_needs_the_image_when_the_prediction_did_not_keep_it(store):
    p = predict(store, 1, unsure=False, keep_image=False)
    with pytest.raises(UserError, match="was not kept"):
        store.add_feedback("square", prediction_id=p.id)
    f = store.add_feedback("square", prediction_id=p.id, image=png(1))
    assert store.image(f.image_sha256) == png(1) and f.predicted_label == "circle"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label": "  "}, "label must not be empty"),
        ({"label": "x" * 201}, "longer than"),
        ({"label": "a\x00b"}, "control characters"),
        ({"label": "cat"}, "prediction id or an image"),
        ({"label": "cat", "prediction_id": "00000000-0000-4000-8000-000000000000"}, "no prediction"),
        ({"label": "cat", "prediction_id": "not-a-uuid"}, "not a prediction id"),
        ({"label": "cat", "image": b""}, "prediction id or an image"),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(store, kwargs, message):
    with pytest.raises(UserError, match=message):
        store.add_feedback(**kwargs)
    assert store.counts().feedback_total == 0


def test_bad_predictions_and_digests_are_refused(store):
    with pytest.raises(UserError, match="at least one label"):
        store.record_prediction(png(1), model_version="m", topk=[], unsure=False)
    with pytest.raises(UserError, match="outside"):
        store.record_prediction(png(1), model_version="m", topk=[{"label": "a", "probability": 1.5}], unsure=False)
    with pytest.raises(UserError, match="SHA-256"):
        store.image("../../etc/passwd")
    with pytest.raises(UserError, match="not in the store"):
        store.image("0" * 64)
    assert store.counts().predictions == 0


def test_identical_images_are_stored_once(store):
    a = store.add_feedback("circle", image=png(3))
    b = store.add_feedback("square", image=png(3))
    assert a.image_sha256 == b.image_sha256 and a.id != b.id
    assert store.image(a.image_sha256) == png(3)


def test_counts_for_metrics(store):
    p1, p2 = predict(store, 1, unsure=True), predict(store, 2, unsure=True)
    predict(store, 3, unsure=False)
    store.decide(p1.id, "square", reviewer="ann")
    store.add_feedback("circle", prediction_id=p2.id)
    store.add_feedback("cross", image=png(9))
    counts = store.counts()
    assert (counts.predictions, counts.unsure_predictions, counts.review_queue) == (3, 2, 1)
    assert counts.feedback_total == 3 and counts.feedback_by_source == {"user": 2, "review": 1}
    assert [f.source for f in store.feedback(source="user")] == ["user", "user"]
    with pytest.raises(UserError, match="unknown feedback source"):
        store.feedback(source="robot")


def test_threads_writing_at_once_lose_nothing(store):
    def writer(t: int) -> None:
        for i in range(15):
            store.add_feedback(f"label{t}", image=png(1000 * t + i), who=f"thread{t}", note=str(i))
            store.counts()  # reads interleaved with writes

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = store.feedback()
    assert len(records) == 90 and len({r.id for r in records}) == 90
    assert all(store.image(r.image_sha256) == png(1000 * int(r.who[6:]) + int(r.note)) for r in records)
    assert store.counts().feedback_total == 90


def test_a_store_from_a_newer_imgclf_is_refused(store_spec):
    with open_store(store_spec) as s, s._write() as cur:
        cur.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(UserError, match="newer imgclf"):
        open_store(store_spec)
