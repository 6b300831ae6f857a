"""The feedback store's interface and its SQL, shared by the SQLite and PostgreSQL backends.

A backend supplies connections and transactions (:meth:`Store._write`, :meth:`Store._read`), the
placeholder style, and where image bytes live (files beside SQLite, a table in PostgreSQL).
Everything that decides what is stored, and every check on what callers hand in, is here once.

Every write happens in one transaction, and a method returns only after its transaction has
committed: a returned record is an acknowledged, durable record.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Sequence

from ...errors import UserError
from .records import (
    LABELLED,
    MAX_LABEL_CHARS,
    MAX_NOTE_CHARS,
    MAX_WHO_CHARS,
    QUEUED,
    SKIPPED,
    SOURCE_REVIEW,
    SOURCE_USER,
    SOURCES,
    Feedback,
    NewPrediction,
    Prediction,
    ReviewItem,
    StoreCounts,
    check_prediction_id,
    check_text,
    check_topk,
    dump_topk,
    load_topk,
    new_id,
    sha256_hex,
)
from .schema import MIGRATIONS, SCHEMA_VERSION, create_statements

SKIP = None  # decide(prediction_id, SKIP, reviewer): the reviewer passes on an item

_PREDICTION_COLUMNS = "id, created, model_version, image_sha256, image_kept, topk, confidence, unsure"
_FEEDBACK_COLUMNS = (
    "id, created, label, who, source, image_sha256, note, prediction_id, "
    "predicted_label, predicted_probability, model_version, topk"
)


class Store:
    """Predictions, the review queue and feedback. Open one with :func:`imgclf.serve.store.open_store`.

    Safe to share between threads; several processes (SQLite) or servers (PostgreSQL) may use the
    same store at once. Use it as a context manager, or call :meth:`close`.
    """

    dialect = ""  # "sqlite" | "postgresql"
    location = ""  # where the store is, for messages (never a password)

    # ------------------------------------------------------------------ backend hooks

    def _write(self) -> AbstractContextManager[Any]:
        """A cursor inside a write transaction that commits on success and rolls back on error."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        """A cursor for reads."""
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        """``sql`` with its ``?`` placeholders in this backend's style."""
        return sql

    def _save_images_before(self, images: dict[str, bytes]) -> None:
        """Make images durable BEFORE the transaction that names them (files beside SQLite)."""

    def _save_images_within(self, cur, images: dict[str, bytes]) -> None:
        """Save images inside the transaction that names them (a table in PostgreSQL)."""

    def _lock_schema(self, cur) -> None:
        """Serialise schema creation between processes that open a new store at the same time."""

    def has_image(self, sha256: str) -> bool:
        raise NotImplementedError

    def image(self, sha256: str) -> bytes:
        """The bytes of a stored image, or a UserError when it is not (or no longer intact) in the store."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    # ------------------------------------------------------------------ schema

    def _init_schema(self) -> None:
        with self._write() as cur:
            self._lock_schema(cur)
            for sql in create_statements(self.dialect):
                cur.execute(sql)
            cur.execute("SELECT version FROM schema_version")
            rows = cur.fetchall()
            if not rows:
                cur.execute(self._q("INSERT INTO schema_version (version) VALUES (?)"), (SCHEMA_VERSION,))
                return
            version = int(rows[0][0])
            if version > SCHEMA_VERSION:
                raise UserError(
                    f"the feedback store {self.location} was written by a newer imgclf (schema {version}, "
                    f"this one reads up to {SCHEMA_VERSION}); upgrade imgclf"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS.get(step, []):
                    cur.execute(sql)
            if version < SCHEMA_VERSION:
                cur.execute(self._q("UPDATE schema_version SET version = ?"), (SCHEMA_VERSION,))

    def schema_version(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT version FROM schema_version")
            return int(cur.fetchone()[0])

    # ------------------------------------------------------------------ predictions and the queue

    def record_prediction(
        self,
        image: bytes,
        *,
        model_version: str,
        topk: Sequence[dict],
        unsure: bool,
        confidence: float | None = None,
        keep_image: bool = True,
    ) -> Prediction:
        """Store one answered image; an unsure one also enters the review queue (its image kept)."""
        item = NewPrediction(image, model_version, topk, unsure, confidence, keep_image)
        return self.record_predictions([item])[0]

    def record_predictions(self, items: Sequence[NewPrediction]) -> list[Prediction]:
        """Store a batch of answers in one transaction (one fsync for the batch, not one per image)."""
        now = time.time()
        records, images = [], {}
        for item in items:
            if not isinstance(item.image, (bytes, bytearray)) or not item.image:
                raise UserError("a prediction needs the image's bytes")
            topk = check_topk(item.topk)
            confidence = topk[0]["probability"] if item.confidence is None else float(item.confidence)
            keep = bool(item.keep_image or item.unsure)
            sha = sha256_hex(bytes(item.image))
            if keep:
                images[sha] = bytes(item.image)
            version = check_text(item.model_version, "model version", MAX_LABEL_CHARS, required=True)
            records.append(Prediction(new_id(), now, version, sha, keep, topk, confidence, bool(item.unsure)))
        self._save_images_before(images)
        with self._write() as cur:
            self._save_images_within(cur, images)
            for p in records:
                cur.execute(
                    self._q(f"INSERT INTO predictions ({_PREDICTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                    (p.id, p.time, p.model_version, p.image_sha256, int(p.image_kept), dump_topk(p.topk),
                     p.confidence, int(p.unsure)),
                )  # fmt: skip
                if p.unsure:
                    cur.execute(
                        self._q("INSERT INTO review_queue (prediction_id, state, queued) VALUES (?, ?, ?)"),
                        (p.id, QUEUED, p.time),
                    )
        return records

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        prediction_id = check_prediction_id(prediction_id)
        with self._read() as cur:
            return self._prediction(cur, prediction_id)

    def _prediction(self, cur, prediction_id: str) -> Prediction | None:
        cur.execute(self._q(f"SELECT {_PREDICTION_COLUMNS} FROM predictions WHERE id = ?"), (prediction_id,))
        row = cur.fetchone()
        return None if row is None else _prediction_from_row(row)

    def next_for_review(self, limit: int = 20) -> list[ReviewItem]:
        """The oldest queued items. Reviewers working at once may see the same item; :meth:`decide`
        lets exactly one of them decide it."""
        limit = max(1, min(int(limit), 1000))
        cols = ", ".join(f"p.{c.strip()}" for c in _PREDICTION_COLUMNS.split(","))
        with self._read() as cur:
            cur.execute(
                self._q(
                    f"SELECT {cols}, q.state, q.queued, q.decided, q.reviewer FROM review_queue q "
                    "JOIN predictions p ON p.id = q.prediction_id WHERE q.state = ? "
                    "ORDER BY q.queued, q.prediction_id LIMIT ?"
                ),
                (QUEUED, limit),
            )
            return [_review_item_from_row(row) for row in cur.fetchall()]

    def review_item(self, prediction_id: str) -> ReviewItem | None:
        prediction_id = check_prediction_id(prediction_id)
        cols = ", ".join(f"p.{c.strip()}" for c in _PREDICTION_COLUMNS.split(","))
        with self._read() as cur:
            cur.execute(
                self._q(
                    f"SELECT {cols}, q.state, q.queued, q.decided, q.reviewer FROM review_queue q "
                    "JOIN predictions p ON p.id = q.prediction_id WHERE q.prediction_id = ?"
                ),
                (prediction_id,),
            )
            row = cur.fetchone()
        return None if row is None else _review_item_from_row(row)

    def decide(self, prediction_id: str, label: str | None, reviewer: str, note: str | None = None) -> Feedback | None:
        """Label a queued item (it becomes a "review" feedback record, returned) or skip it (``label=SKIP``).

        The queue row changes state only if it is still queued, in the same transaction as the
        feedback: of two reviewers deciding one item at once, exactly one succeeds; the other gets
        a UserError saying it was already decided.
        """
        prediction_id = check_prediction_id(prediction_id)
        reviewer = check_text(reviewer, "reviewer", MAX_WHO_CHARS, required=True)
        label = check_text(label, "label", MAX_LABEL_CHARS, required=False)
        note = check_text(note, "note", MAX_NOTE_CHARS, required=False)
        now = time.time()
        with self._write() as cur:
            cur.execute(
                self._q("UPDATE review_queue SET state = ?, decided = ?, reviewer = ? WHERE prediction_id = ? AND state = ?"),
                (LABELLED if label else SKIPPED, now, reviewer, prediction_id, QUEUED),
            )
            if cur.rowcount != 1:
                cur.execute(self._q("SELECT state FROM review_queue WHERE prediction_id = ?"), (prediction_id,))
                row = cur.fetchone()
                if row is None:
                    raise UserError(f"prediction {prediction_id} is not in the review queue")
                raise UserError(f"prediction {prediction_id} was already reviewed ({row[0]})")
            if not label:
                return None
            prediction = self._prediction(cur, prediction_id)
            feedback = _feedback_for(prediction, label, reviewer, SOURCE_REVIEW, note, prediction.image_sha256, now)
            self._insert_feedback(cur, feedback)
        return feedback

    # ------------------------------------------------------------------ feedback

    def add_feedback(
        self,
        label: str,
        *,
        who: str = "anonymous",
        prediction_id: str | None = None,
        image: bytes | None = None,
        note: str | None = None,
    ) -> Feedback:
        """A user's correction: ``label`` is the right answer for a prediction (by id) or for an image.

        With a prediction id the prediction's kept image is used, unless ``image`` is given too
        (needed when the prediction was stored with ``keep_image=False``). Returns once durable.
        """
        label = check_text(label, "label", MAX_LABEL_CHARS, required=True)
        who = check_text(who, "name of who gave feedback", MAX_WHO_CHARS, required=True)
        note = check_text(note, "note", MAX_NOTE_CHARS, required=False)
        if prediction_id is None and not image:
            raise UserError("feedback needs a prediction id or an image")
        if image is not None and (not isinstance(image, (bytes, bytearray)) or not image):
            raise UserError("the feedback's image is empty")
        prediction = None
        if prediction_id is not None:
            prediction = self.get_prediction(prediction_id)
            if prediction is None:
                raise UserError(f"no prediction {prediction_id} in the store")
            if image is None and not prediction.image_kept:
                raise UserError(f"the image of prediction {prediction_id} was not kept; send the image with the feedback")
        images = {sha256_hex(bytes(image)): bytes(image)} if image else {}
        sha = next(iter(images)) if images else prediction.image_sha256
        feedback = _feedback_for(prediction, label, who, SOURCE_USER, note, sha, time.time())
        self._save_images_before(images)
        with self._write() as cur:
            self._save_images_within(cur, images)
            self._insert_feedback(cur, feedback)
        return feedback

    def _insert_feedback(self, cur, f: Feedback) -> None:
        cur.execute(
            self._q(f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (f.id, f.time, f.label, f.who, f.source, f.image_sha256, f.note, f.prediction_id,
             f.predicted_label, f.predicted_probability, f.model_version, dump_topk(f.topk)),
        )  # fmt: skip

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        feedback_id = check_prediction_id(feedback_id)  # also a UUID
        with self._read() as cur:
            cur.execute(self._q(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE id = ?"), (feedback_id,))
            row = cur.fetchone()
        return None if row is None else _feedback_from_row(row)

    def feedback(self, source: str | None = None) -> list[Feedback]:
        """Every feedback record (optionally of one source), oldest first."""
        if source is not None and source not in SOURCES:
            raise UserError(f"unknown feedback source {source!r}; use one of {', '.join(SOURCES)}")
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        with self._read() as cur:
            cur.execute(self._q(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback {where} ORDER BY created, id"), params)
            return [_feedback_from_row(row) for row in cur.fetchall()]

    # ------------------------------------------------------------------ metrics

    def counts(self) -> StoreCounts:
        with self._read() as cur:
            cur.execute("SELECT COUNT(*), COALESCE(SUM(unsure), 0) FROM predictions")
            predictions, unsure = cur.fetchone()
            cur.execute("SELECT source, COUNT(*) FROM feedback GROUP BY source")
            by_source = {source: 0 for source in SOURCES}
            by_source.update({str(source): int(n) for source, n in cur.fetchall()})
            cur.execute(self._q("SELECT COUNT(*) FROM review_queue WHERE state = ?"), (QUEUED,))
            queued = cur.fetchone()[0]
        return StoreCounts(int(predictions), int(unsure), sum(by_source.values()), by_source, int(queued))


def _feedback_for(prediction, label, who, source, note, sha, now) -> Feedback:
    return Feedback(
        id=new_id(), time=now, label=label, who=who, source=source, image_sha256=sha, note=note,
        prediction_id=prediction.id if prediction else None,
        predicted_label=prediction.top_label if prediction else None,
        predicted_probability=prediction.top_probability if prediction else None,
        model_version=prediction.model_version if prediction else None,
        topk=prediction.topk if prediction else None,
    )  # fmt: skip


def _prediction_from_row(row) -> Prediction:
    pid, created, version, sha, kept, topk, confidence, unsure = row[:8]
    return Prediction(str(pid), float(created), version, sha, bool(kept), load_topk(topk), float(confidence), bool(unsure))


def _review_item_from_row(row) -> ReviewItem:
    state, queued, decided, reviewer = row[8:12]
    return ReviewItem(_prediction_from_row(row), state, float(queued), None if decided is None else float(decided), reviewer)


def _feedback_from_row(row) -> Feedback:
    fid, created, label, who, source, sha, note, pid, plabel, pprob, version, topk = row
    return Feedback(
        id=str(fid), time=float(created), label=label, who=who, source=source, image_sha256=sha, note=note,
        prediction_id=None if pid is None else str(pid), predicted_label=plabel,
        predicted_probability=None if pprob is None else float(pprob), model_version=version, topk=load_topk(topk),
    )  # fmt: skip
