"""Prometheus metrics for ``GET /metrics``, correct with several worker processes.

With several workers, ``imgclf serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before any worker starts; prometheus-client then keeps every process's values in files there and
:func:`render` adds them up (counters and histograms summed over workers, gauges combined per
their ``multiprocess_mode``), so a scrape reports the whole service whichever worker answers it.

- traffic: requests by route, method and status; latency histogram by route
- answers: predicted class counts, confidence histogram, unsure answers (the unsure rate is
  ``imgclf_unsure_predictions_total / imgclf_images_predicted_total``; the store's all-time rate,
  across servers, is ``imgclf_store_unsure_rate``)
- feedback: records this service accepted by source, review decisions; the store's totals
- drift: per statistic PSI, KS statistic and flag (the largest over live workers: each worker
  watches the traffic it served)
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

REQUESTS = Counter("imgclf_http_requests", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("imgclf_http_request_duration_seconds", "Time to answer a request", ["route"], buckets=_LATENCY_BUCKETS)
IMAGES = Counter("imgclf_images_predicted", "Images answered")
PREDICTED = Counter("imgclf_predicted_class", "Images answered, by predicted class", ["label"])
UNSURE = Counter("imgclf_unsure_predictions", "Images answered below the confidence threshold evaluation chose")
CONFIDENCE = Histogram("imgclf_prediction_confidence", "Top-1 calibrated probability of each answer", buckets=_CONFIDENCE_BUCKETS)
FEEDBACK = Counter("imgclf_feedback", "Feedback records accepted by this service", ["source"])
REVIEWS = Counter("imgclf_review_decisions", "Review queue decisions", ["decision"])
BATCH_SIZE = Histogram("imgclf_model_batch_images", "Images per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128))

STORE_PREDICTIONS = Gauge("imgclf_store_predictions", "Predictions in the store", multiprocess_mode="mostrecent")
STORE_UNSURE_RATE = Gauge("imgclf_store_unsure_rate", "Unsure share of the store's predictions", multiprocess_mode="mostrecent")
STORE_FEEDBACK = Gauge("imgclf_store_feedback", "Feedback records in the store, by source", ["source"], multiprocess_mode="mostrecent")
REVIEW_QUEUE = Gauge("imgclf_review_queue", "Unsure predictions waiting for a reviewer", multiprocess_mode="mostrecent")

DRIFT_PSI = Gauge("imgclf_drift_psi", "Population stability index of a statistic against the baseline", ["statistic"],
                  multiprocess_mode="livemax")  # fmt: skip
DRIFT_KS = Gauge("imgclf_drift_ks_statistic", "Kolmogorov-Smirnov statistic against the baseline", ["statistic"],
                 multiprocess_mode="livemax")  # fmt: skip
DRIFT_FLAGGED = Gauge("imgclf_drift_flagged", "1 when a statistic has drifted", ["statistic"], multiprocess_mode="livemax")
MODEL_INFO = Gauge("imgclf_model_info", "1 for the model version in service", ["version"], multiprocess_mode="livemax")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def observe_answers(labels: list[str], confidences: list[float], unsure: list[bool | None]) -> None:
    IMAGES.inc(len(labels))
    for label, confidence, flag in zip(labels, confidences, unsure):
        PREDICTED.labels(label=label).inc()
        CONFIDENCE.observe(confidence)
        if flag:
            UNSURE.inc()


def observe_store(counts) -> None:
    """The store's totals (a :class:`~.store.StoreCounts`), shared by every worker and server."""
    STORE_PREDICTIONS.set(counts.predictions)
    STORE_UNSURE_RATE.set(counts.unsure_predictions / counts.predictions if counts.predictions else 0.0)
    for source, n in counts.feedback_by_source.items():
        STORE_FEEDBACK.labels(source=source).set(n)
    REVIEW_QUEUE.set(counts.review_queue)


def observe_drift(scores: dict | None) -> None:
    for name, entry in ((scores or {}).get("statistics") or {}).items():
        if entry.get("psi") is not None:
            DRIFT_PSI.labels(statistic=name).set(entry["psi"])
            DRIFT_KS.labels(statistic=name).set(entry["ks_statistic"])
        DRIFT_FLAGGED.labels(statistic=name).set(1.0 if entry.get("drifted") else 0.0)


def model_changed(old_version: str | None, new_version: str) -> None:
    if old_version:
        MODEL_INFO.labels(version=old_version).set(0)
    MODEL_INFO.labels(version=new_version).set(1)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (summed over worker processes in multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """Drop this worker's live gauges (drift, model version) so a stopped worker stops counting."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
