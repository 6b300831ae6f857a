"""Operations: liveness, readiness, what is served, drift, Prometheus metrics, and model reload."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from . import metrics
from .schemas import ERRORS, Drift, Health, Info, Ready, Reloaded
from .security import require_key

router = APIRouter(tags=["operations"])


@router.get("/v1/health", response_model=Health)
def health() -> dict:
    """Liveness: the process answers (Kubernetes' livenessProbe). Never touches the model or the store."""
    return {"status": "ok", "worker": os.getpid()}


@router.get("/v1/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(request: Request):
    """Readiness: the model is loaded and the store open (Kubernetes' readinessProbe); 503 until then."""
    service = request.app.state.service
    model = service.model
    if service.ready and model is not None:
        return {"ready": True, "model_version": model.version, "worker": os.getpid()}
    return JSONResponse({"ready": False, "detail": f"not ready: {service.not_ready}", "worker": os.getpid()}, status_code=503)


@router.get("/v1/info", response_model=Info, responses=ERRORS)
def info(request: Request) -> dict:
    """The classes, the model in service and its evaluation metrics, and this service's limits."""
    return request.app.state.service.info()


@router.get("/v1/drift", response_model=Drift, response_model_exclude_none=True, responses=ERRORS)
def drift(request: Request) -> dict:
    """Drift scores of the recent traffic (this worker's window) against the run's baseline: per
    statistic the KS test and PSI, and whether any drifted."""
    return request.app.state.service.drift()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics, summed over all worker processes."""
    await run_in_threadpool(request.app.state.service.refresh_metrics)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


@router.post("/v1/admin/reload", response_model=Reloaded, responses=ERRORS, dependencies=[Depends(require_key)])
async def reload(request: Request, force: bool = Query(False, description="reload even if the model at RUN looks unchanged")) -> dict:
    """Take the model now at RUN into service without downtime: load and warm it up beside the
    current one, then swap; requests in flight finish on the old one. RUN is the path the service
    was started with (a `current` link to the promoted run is followed): no client names a path.

    This worker swaps at once; other workers notice the change within ``--watch`` seconds."""
    return await run_in_threadpool(request.app.state.service.reload, force)
