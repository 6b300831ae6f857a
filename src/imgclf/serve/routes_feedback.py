"""Feedback (a user flags a wrong answer) and human review of unsure answers. All need the API key."""

from __future__ import annotations

import io

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from .http_errors import Refused
from .schemas import ERRORS, FeedbackOut, ReviewDecision, ReviewQueue
from .security import require_key
from .uploads import Upload, display_name

router = APIRouter(prefix="/v1", tags=["feedback and review"], dependencies=[Depends(require_key)])

_MEDIA_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff",
}  # fmt: skip


@router.post("/feedback", response_model=FeedbackOut, responses=ERRORS)
async def feedback(
    request: Request,
    label: str = Form(..., max_length=200, description="the correct label (one of the model's classes)"),
    prediction_id: str | None = Form(None, max_length=64, description="the id /v1/predict gave the answer"),
    note: str | None = Form(None, max_length=2000),
    who: str | None = Form(None, max_length=200, description="who flags it (default: anonymous)"),
    file: UploadFile | None = File(None, description="the image; needed without a prediction id, or when its image was not kept"),
) -> dict:
    """Record the correct label for a prediction (by id) or for an image. Answers once durable."""
    if prediction_id is None and file is None:
        raise Refused(422, "feedback needs a prediction_id or an image file")
    image = Upload(display_name(file.filename, 0), await file.read()) if file is not None else None
    service = request.app.state.service
    return await run_in_threadpool(service.add_feedback, label, prediction_id or None, image, note, who)


@router.get("/feedback/{feedback_id}", response_model=FeedbackOut, responses=ERRORS)
def get_feedback(request: Request, feedback_id: str) -> dict:
    """One feedback record, as stored."""
    return request.app.state.service.get_feedback(feedback_id)


@router.get("/review/queue", response_model=ReviewQueue, responses=ERRORS)
def review_queue(request: Request, limit: int = Query(20, ge=1, le=200)) -> dict:
    """The oldest unsure predictions waiting for a reviewer, with the model's top guesses."""
    return {"items": request.app.state.service.review_queue(limit)}


@router.get(
    "/review/{prediction_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "the stored image"}, **ERRORS},
)
def review_image(request: Request, prediction_id: str) -> Response:
    """The image a prediction was made on (when the store kept it: every unsure one)."""
    data = request.app.state.service.review_image(prediction_id)
    # The media type is the decoded format's, never a client's claim; nosniff (set on every
    # answer) stops a browser from treating stored bytes as a page.
    return Response(data, media_type=_media_type(data), headers={"Cache-Control": "private, max-age=3600"})


@router.post("/review/{prediction_id}", response_model=ReviewDecision, responses=ERRORS)
def review_decide(
    request: Request,
    prediction_id: str,
    label: str | None = Form(None, max_length=200, description="the label the reviewer assigns"),
    skip: bool = Form(False, description="pass on this item instead of labelling it"),
    reviewer: str = Form("reviewer", max_length=200),
    note: str | None = Form(None, max_length=2000),
) -> dict:
    """Decide a queued item: assign ``label`` (it becomes a feedback record) or ``skip`` it."""
    if bool(label) == bool(skip):
        raise Refused(422, "give either a label or skip=true")
    return request.app.state.service.decide(prediction_id, label or None, reviewer, note)


def _media_type(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _MEDIA_TYPES.get(img.format or "", "application/octet-stream")
    except Exception:  # noqa: BLE001 - stored after decoding, so this is unreachable in practice
        return "application/octet-stream"
