"""``POST /v1/predict`` and ``POST /v1/explain``: images in (multipart or a raw body), answers out."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from .http_errors import Refused
from .schemas import ERRORS, PredictResponse
from .security import require_key_if_protected
from .uploads import Upload, display_name

router = APIRouter(prefix="/v1", tags=["predict"], dependencies=[Depends(require_key_if_protected)])

RAW_TYPES = ("image/", "application/octet-stream")
_IMAGE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"},
                                               "description": "one or more image files (any field name is accepted)"}}},  # fmt: skip
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


async def read_uploads(request: Request, max_files: int) -> list[Upload]:
    """The images of a request: every file part of a multipart form, or the whole body.

    The content type only says how the request is framed; whether each part is an image, and
    which format, is decided by decoding its bytes.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        uploads = []
        async with request.form(max_files=max_files + 1, max_fields=100) as form:
            for _, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads.append(Upload(display_name(value.filename, len(uploads)), await value.read()))
        return uploads
    if ctype == "" or ctype.startswith(RAW_TYPES):
        return [Upload("body", await request.body())]
    raise Refused(415, "send images as multipart/form-data or as the raw body with an image/* or application/octet-stream "
                       f"content type, not {ctype[:80]}")  # fmt: skip


@router.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra={"requestBody": _IMAGE_BODY})
async def predict(
    request: Request,
    top_k: int | None = Query(None, ge=1, le=1000, description="labels per image (default: the service's --top-k)"),
) -> dict:
    """Top-k labels with calibrated probabilities for one or more images, each with a prediction id
    (for feedback), the model version and ``unsure``. An unsure answer enters the review queue.

    A request is answered whole or refused whole: one unreadable image refuses it with the reason."""
    service = request.app.state.service
    return await service.predict(await read_uploads(request, service.settings.max_files), top_k)


@router.post(
    "/explain",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the Grad-CAM overlay"}, **ERRORS},
    openapi_extra={"requestBody": _IMAGE_BODY},
)
async def explain(
    request: Request,
    label: str | None = Query(None, max_length=200, description="the class to explain (default: the predicted one)"),
) -> Response:
    """The Grad-CAM overlay of one image as PNG: where the model looked for ``label`` (or for its
    prediction). Headers ``X-Imgclf-Predicted`` / ``-Explained`` (URL-encoded) and ``-Probability``."""
    service = request.app.state.service
    uploads = await read_uploads(request, 1)
    if len(uploads) != 1:
        raise Refused(422, f"explain takes exactly one image, not {len(uploads)}")
    png, about = await service.explain(uploads[0], label)
    headers = {
        "X-Imgclf-Predicted": quote(about["predicted"]), "X-Imgclf-Probability": f"{about['probability']:.6f}",
        "X-Imgclf-Explained": quote(about["explained"]), "X-Imgclf-Model-Version": quote(about["model_version"], safe="@"),
        "Cache-Control": "no-store",
    }  # fmt: skip
    return Response(png, media_type="image/png", headers=headers)
