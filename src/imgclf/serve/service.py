"""The service behind the HTTP routes: one model in service (swappable), the feedback store, the
decode pool and the two micro-batchers. Routes parse and answer; everything they do is here.

Threads: decoding runs in ``decode_pool`` (Pillow releases the GIL); the model runs in its
batcher's one thread; store writes for predictions run in the store batcher's one thread (one
transaction per batch); other store calls run in the web framework's thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..errors import UserError
from . import metrics
from .batcher import MicroBatcher
from .http_errors import Refused
from .loaded_model import LoadedModel, model_signature
from .security import KeyGuard
from .settings import ServeSettings
from .store import NewPrediction, Store, open_store
from .store.records import iso_time
from .uploads import Upload, decode_upload

log = logging.getLogger("imgclf.serve")


class Service:
    def __init__(self, settings: ServeSettings, api_key: str | None):
        self.settings = settings
        self.guard = KeyGuard(api_key)
        self.store: Store | None = None
        self.model: LoadedModel | None = None
        self.not_ready = "the model is loading"
        self._swap = threading.Lock()  # guards self.model and its users count together
        self._reloading = threading.Lock()  # one load at a time
        self._store_writer: MicroBatcher | None = None
        self.decode_pool = ThreadPoolExecutor(settings.decode_threads or os.cpu_count() or 1, thread_name_prefix="decode")

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Open the store and load the model (seconds: call it off the event loop). Until both
        succeed, /v1/ready says why, and the watcher calls this again."""
        try:
            if self.store is None:
                self.store = open_store(self.settings.store_spec())
                self._store_writer = MicroBatcher(self.store.record_predictions, max_batch=256, max_wait_s=0.0, name="store")
            self.reload(force=True)
        except Refused as exc:
            self.not_ready = exc.reason
        except UserError as exc:
            self.not_ready = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by /v1/ready; the process stays up to say why
            log.exception("the service could not start")
            self.not_ready = f"the service could not start ({exc.__class__.__name__})"

    def close(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            model.retire(timeout=30)
        if self._store_writer is not None:
            self._store_writer.close(timeout=30)
        if self.store is not None:
            self.store.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.store is not None

    # ------------------------------------------------------------------ the model in service

    @contextmanager
    def using_model(self) -> Iterator[LoadedModel]:
        """The model in service, held for the whole request: a reload meanwhile lets it finish here."""
        with self._swap:
            model = self.model
            if model is None or self._store_writer is None:
                raise Refused(503, f"not ready: {self.not_ready}")
            model.acquire()
        try:
            yield model
        finally:
            model.release()

    def reload(self, force: bool = False) -> dict:
        """Load the model at RUN again if it changed (or ``force``), then swap it in.

        The new model is loaded and warmed up while the old one keeps answering; requests that
        started on the old one finish on it, and it is retired once they have.
        """
        with self._reloading:
            previous = self.model
            if not force and previous is not None and model_signature(self.settings.run) == previous.signature:
                return {"reloaded": False, "model_version": previous.version, "previous_version": previous.version, "worker": os.getpid()}
            try:
                new = LoadedModel(self.settings)
            except UserError as exc:
                name = os.path.basename(self.settings.run)
                raise Refused(409, f"the model at {name} cannot be loaded, so the current one stays: {exc}") from None
            with self._swap:
                self.model = new
            metrics.model_changed(previous.version if previous else None, new.version)
            if previous is not None:
                threading.Thread(target=previous.retire, name="retire", daemon=True).start()
            log.info("serving %s (was %s)", new.version, previous.version if previous else "nothing")
            return {"reloaded": True, "model_version": new.version,
                    "previous_version": previous.version if previous else None, "worker": os.getpid()}  # fmt: skip

    def watch_once(self) -> None:
        """Reload when the model at RUN changed (a moved `current` link, a retrained run); keep
        trying to start when starting failed (a link caught mid-promotion, a store not up yet)."""
        if not self.ready:
            self.start()
            return
        if model_signature(self.settings.run) == self.model.signature:
            return
        try:
            self.reload()
        except Refused as exc:  # e.g. caught between two files of a bundle being replaced: next time
            log.warning("%s", exc.reason)

    # ------------------------------------------------------------------ predict and explain

    async def predict(self, uploads: list[Upload], top_k: int | None) -> dict:
        if not uploads:
            raise Refused(422, "send at least one image (multipart field 'file', or the image as the request body)")
        if len(uploads) > self.settings.max_files:
            raise Refused(413, f"{len(uploads)} images in one request; this service takes at most {self.settings.max_files}")
        loop = asyncio.get_running_loop()
        with self.using_model() as model:
            k = max(1, min(top_k or self.settings.top_k, len(model.classes)))
            pre, limit = model.predictor.preprocess, self.settings.max_pixels
            decoded = await asyncio.gather(*(loop.run_in_executor(self.decode_pool, decode_upload, u, pre, limit) for u in uploads))
            rows = await asyncio.gather(*(asyncio.wrap_future(f) for f in model.batcher.submit_many([d.pixels for d in decoded])))
            answers = [self._answer(model, p, k) for p in rows]
            if model.drift_feed is not None:
                model.drift_feed.submit(decoded, [a["probability"] for a in answers])
            new = [NewPrediction(d.data, model.version, a["top"], bool(a["unsure"]), keep_image=self.settings.keep_images)
                   for d, a in zip(decoded, answers)]  # fmt: skip
            records = await asyncio.gather(*(asyncio.wrap_future(f) for f in self._store_writer.submit_many(new)))
        metrics.observe_answers([a["label"] for a in answers], [a["probability"] for a in answers], [a["unsure"] for a in answers])
        out = []
        for d, a, r in zip(decoded, answers, records):
            out.append({"id": r.id, "file": d.name, **a, "image_kept": r.image_kept})
        return {"model_version": model.version, "predictions": out}

    @staticmethod
    def _answer(model: LoadedModel, probs: np.ndarray, k: int) -> dict:
        if not np.isfinite(probs).all():  # a broken model, not the client's image: never stored as an answer
            raise Refused(500, f"the model {model.version} produced non-finite probabilities")
        order = np.argsort(-probs)[:k]
        top = [{"label": model.classes[i], "probability": float(probs[i])} for i in order]
        return {"label": top[0]["label"], "probability": top[0]["probability"],
                "unsure": model.predictor.meta.is_unsure(top[0]["probability"]), "top": top}  # fmt: skip

    async def explain(self, upload: Upload, label: str | None) -> tuple[bytes, dict]:
        """The Grad-CAM overlay PNG of one image and what it explains (for response headers)."""
        loop = asyncio.get_running_loop()
        with self.using_model() as model:
            target = self._class_index(model, label) if label else None
            d = await loop.run_in_executor(self.decode_pool, decode_upload, upload, model.predictor.preprocess, self.settings.max_pixels)
            try:
                png, k, probs = await asyncio.to_thread(model.explain_png, d.pixels, target)
            except UserError as exc:
                raise Refused(422, str(exc)) from None
        best = int(probs.argmax())
        return png, {"predicted": model.classes[best], "probability": float(probs[best]),
                     "explained": model.classes[k], "model_version": model.version}  # fmt: skip

    @staticmethod
    def _class_index(model: LoadedModel, label: str) -> int:
        if label not in model.classes:
            shown = ", ".join(model.classes[:20]) + (" ..." if len(model.classes) > 20 else "")
            raise Refused(422, f"{label[:100]!r} is not one of the model's classes ({shown})")
        return model.classes.index(label)

    # ------------------------------------------------------------------ feedback and review

    def add_feedback(self, label: str, prediction_id: str | None, image: Upload | None, note: str | None, who: str | None) -> dict:
        with self.using_model() as model:
            self._class_index(model, label)
            if image is not None:  # only images the model can read become training data
                decode_upload(image, model.predictor.preprocess, self.settings.max_pixels)
        if prediction_id is not None and self._store().get_prediction(prediction_id) is None:
            raise Refused(404, f"no prediction {prediction_id} in the store")
        record = self._store().add_feedback(label, who=who or "anonymous", prediction_id=prediction_id,
                                         image=image.data if image else None, note=note)  # fmt: skip
        metrics.FEEDBACK.labels(source=record.source).inc()
        return _feedback_dict(record)

    def get_feedback(self, feedback_id: str) -> dict:
        record = self._store().get_feedback(feedback_id)
        if record is None:
            raise Refused(404, f"no feedback {feedback_id} in the store")
        return _feedback_dict(record)

    def review_queue(self, limit: int) -> list[dict]:
        return [{
            "prediction_id": item.prediction.id, "queued": iso_time(item.queued_time),
            "model_version": item.prediction.model_version, "confidence": item.prediction.confidence,
            "top": item.prediction.topk, "image_url": f"/v1/review/{item.prediction.id}/image",
        } for item in self._store().next_for_review(limit)]  # fmt: skip

    def review_image(self, prediction_id: str) -> bytes:
        prediction = self._store().get_prediction(prediction_id)
        if prediction is None or not prediction.image_kept:
            raise Refused(404, f"no kept image for prediction {prediction_id}")
        return self._store().image(prediction.image_sha256)

    def decide(self, prediction_id: str, label: str | None, reviewer: str, note: str | None) -> dict:
        if label is not None:
            with self.using_model() as model:
                self._class_index(model, label)
        item = self._store().review_item(prediction_id)
        if item is None:
            raise Refused(404, f"prediction {prediction_id} is not in the review queue")
        try:
            record = self._store().decide(prediction_id, label, reviewer, note)
        except UserError as exc:  # another reviewer decided it first
            raise Refused(409, str(exc)) from None
        metrics.REVIEWS.labels(decision="labelled" if label else "skipped").inc()
        if record is not None:
            metrics.FEEDBACK.labels(source=record.source).inc()
        return {"prediction_id": prediction_id, "decision": "labelled" if label else "skipped",
                "feedback": _feedback_dict(record) if record else None}  # fmt: skip

    def _store(self) -> Store:
        if self.store is None:
            raise Refused(503, f"not ready: {self.not_ready}")
        return self.store

    # ------------------------------------------------------------------ monitoring

    def drift(self) -> dict:
        with self.using_model() as model:
            if model.drift_feed is None:
                return {"available": False, "reason": model.drift_unavailable, "model_version": model.version, "worker": os.getpid()}
            scores = model.drift_feed.scores()
        metrics.observe_drift(scores)
        return {"available": True, "model_version": model.version, "worker": os.getpid(), **scores}

    def refresh_metrics(self) -> None:
        """Store totals and this worker's drift scores into the gauges (before a scrape, and periodically)."""
        if self.store is not None:
            metrics.observe_store(self.store.counts())
        model = self.model
        if model is not None and model.drift is not None:
            metrics.observe_drift(model.drift.scores())

    def info(self) -> dict:
        with self.using_model() as model:
            return {
                "classes": model.classes,
                "model": model.describe(),
                "evaluation": model.evaluation,
                "limits": {"max_upload_bytes": self.settings.max_upload_bytes, "max_files": self.settings.max_files,
                           "max_pixels": self.settings.max_pixels, "top_k": self.settings.top_k},
                "batching": {"max_batch": self.settings.max_batch, "max_wait_ms": self.settings.max_wait_ms,
                             "batches": model.batcher.batches, "images": model.batcher.items},
                "predict_needs_key": self.settings.protect_predict,
                "store": self.store.dialect if self.store else None,
                "worker": os.getpid(),
            }  # fmt: skip


def _feedback_dict(record) -> dict:
    d = record.to_dict()
    d["time"] = iso_time(record.time)
    return d
