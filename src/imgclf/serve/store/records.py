"""The records a feedback store keeps, and the checks on what callers hand it.

Values arrive from HTTP clients, so every field is validated here once, for both backends.
Times are UTC seconds since the epoch (floats): portable between SQLite and PostgreSQL and
trivially JSON-serialisable; :func:`iso_time` renders them for people.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Sequence

from ...errors import UserError

SOURCE_USER = "user"  # a person using the app flagged a wrong answer
SOURCE_REVIEW = "review"  # a reviewer labelled a queued unsure prediction
SOURCES = (SOURCE_USER, SOURCE_REVIEW)

QUEUED, LABELLED, SKIPPED = "queued", "labelled", "skipped"
REVIEW_STATES = (QUEUED, LABELLED, SKIPPED)

MAX_LABEL_CHARS = 200
MAX_NOTE_CHARS = 2000
MAX_WHO_CHARS = 200
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class NewPrediction:
    """What the service knows about one answered image, before it is stored."""

    image: bytes
    model_version: str
    topk: Sequence[Mapping]  # [{"label": str, "probability": float}, ...], best first
    unsure: bool
    confidence: float | None = None  # defaults to the top-1 probability
    keep_image: bool = True  # unsure images are always kept (the review queue shows them)


@dataclass(frozen=True)
class Prediction:
    id: str
    time: float
    model_version: str
    image_sha256: str
    image_kept: bool
    topk: list[dict]
    confidence: float
    unsure: bool

    @property
    def top_label(self) -> str:
        return str(self.topk[0]["label"])

    @property
    def top_probability(self) -> float:
        return float(self.topk[0]["probability"])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReviewItem:
    prediction: Prediction
    state: str
    queued_time: float
    decided_time: float | None = None
    reviewer: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Feedback:
    """A correct label for an image: flagged by a user or decided by a reviewer."""

    id: str
    time: float
    label: str
    who: str
    source: str
    image_sha256: str
    note: str | None = None
    prediction_id: str | None = None
    # The original prediction, when the feedback names one.
    predicted_label: str | None = None
    predicted_probability: float | None = None
    model_version: str | None = None
    topk: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StoreCounts:
    """Totals for metrics; the same in every process and server that shares the store."""

    predictions: int = 0
    unsure_predictions: int = 0
    feedback_total: int = 0
    feedback_by_source: dict[str, int] = field(default_factory=dict)
    review_queue: int = 0  # items still queued

    def to_dict(self) -> dict:
        return asdict(self)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_id() -> str:
    """A random UUID: unguessable, so knowing one prediction id reveals no other."""
    return str(uuid.uuid4())


def iso_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds")


def check_sha256(value: str) -> str:
    """A lowercase hex SHA-256 digest, or a UserError: digests name image files, so nothing else may pass."""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise UserError(f"{value!r} is not a SHA-256 digest (64 lowercase hex characters)")
    return value


def check_prediction_id(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise UserError(f"{value!r} is not a prediction id (a UUID)") from None


def check_text(value: str | None, what: str, limit: int, *, required: bool) -> str | None:
    """Strip ``value``; refuse it when empty (if required), too long, or holding control characters."""
    if value is None or str(value).strip() == "":
        if required:
            raise UserError(f"the {what} must not be empty")
        return None
    text = str(value).strip()
    if len(text) > limit:
        raise UserError(f"the {what} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in text) or ("\n" in text and what != "note"):
        raise UserError(f"the {what} contains control characters")
    return text


def check_topk(topk: Sequence[Mapping]) -> list[dict]:
    """Normalise ``topk`` to ``[{"label": str, "probability": float}, ...]`` (at least one entry)."""
    if not topk:
        raise UserError("a prediction needs at least one label in its top-k")
    clean = []
    for entry in topk:
        try:
            label, probability = str(entry["label"]), float(entry["probability"])
        except (KeyError, TypeError, ValueError):
            raise UserError("each top-k entry needs a label and a numeric probability") from None
        if not 0.0 <= probability <= 1.0:
            raise UserError(f"probability {probability} of {label!r} is outside [0, 1]")
        clean.append({"label": label, "probability": probability})
    return clean


def dump_topk(topk: list[dict] | None) -> str | None:
    return None if topk is None else json.dumps(topk, separators=(",", ":"))


def load_topk(text: str | None) -> list[dict] | None:
    return None if text is None else json.loads(text)
