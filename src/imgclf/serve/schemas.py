"""The JSON the service answers, as pydantic models: FastAPI checks responses against them and
describes them in the OpenAPI schema (``/openapi.json``, browsable at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Error(BaseModel):
    detail: str = Field(description="why the request was refused, in one sentence")


class Ranked(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1, description="calibrated probability")


class PredictionOut(BaseModel):
    id: str = Field(description="the prediction id: send it with feedback")
    file: str = Field(description="the upload's name as the client gave it (display only)")
    label: str
    probability: float
    unsure: bool | None = Field(description="below the confidence threshold evaluation chose; null when the run was not evaluated")
    top: list[Ranked]
    image_kept: bool = Field(description="the store kept the image (unsure ones always are)")


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[PredictionOut]


class FeedbackOut(BaseModel):
    id: str
    time: str
    label: str
    who: str
    source: str = Field(description="user (a flagged answer) or review (a reviewer's decision)")
    image_sha256: str
    note: str | None = None
    prediction_id: str | None = None
    predicted_label: str | None = None
    predicted_probability: float | None = None
    model_version: str | None = None
    topk: list[Ranked] | None = None


class ReviewItemOut(BaseModel):
    prediction_id: str
    queued: str
    model_version: str
    confidence: float
    top: list[Ranked]
    image_url: str


class ReviewQueue(BaseModel):
    items: list[ReviewItemOut]


class ReviewDecision(BaseModel):
    prediction_id: str
    decision: str = Field(description="labelled or skipped")
    feedback: FeedbackOut | None = None


class Health(BaseModel):
    status: str = "ok"
    worker: int


class Ready(BaseModel):
    ready: bool
    model_version: str | None = None
    worker: int


class Reloaded(BaseModel):
    reloaded: bool = Field(description="false when the model at RUN had not changed")
    model_version: str
    previous_version: str | None = None
    worker: int = Field(description="the worker process that reloaded; the others follow RUN within --watch seconds")


class Info(BaseModel):
    classes: list[str]
    model: dict[str, Any]
    evaluation: dict[str, Any] | None = Field(description="RUN/eval/metrics.json's figures; null when not evaluated")
    limits: dict[str, int]
    batching: dict[str, float]
    predict_needs_key: bool
    store: str | None
    worker: int


class Drift(BaseModel):
    available: bool
    model_version: str
    worker: int = Field(description="drift windows are per worker process: this one's traffic")
    reason: str | None = None
    drifted: bool | None = None
    drifted_statistics: list[str] | None = None
    window: int | None = None
    thresholds: dict[str, float] | None = None
    statistics: dict[str, dict[str, Any]] | None = None
    dropped: int | None = Field(None, description="images not observed because monitoring fell behind under load (a sample is kept)")


ERRORS = {code: {"model": Error} for code in (401, 403, 404, 409, 413, 415, 422, 503)}
