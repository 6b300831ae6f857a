"""The FastAPI application: routes, error handling, limits, metrics and the service's life cycle.

    app = create_app(ServeSettings.checked(run="runs/demo"), api_key="...")   # in-process (tests)
    imgclf.serve.server.serve("runs/demo", workers=2)                         # uvicorn, see server.py

The model loads in the background once the process starts: ``/v1/health`` answers at once,
``/v1/ready`` says 503 until the model is in service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders

from .._version import __version__
from . import http_errors, metrics, routes_feedback, routes_ops, routes_pages, routes_predict
from .security import BodyLimit, read_api_key
from .service import Service
from .settings import ServeSettings

log = logging.getLogger("imgclf.serve")
METRICS_REFRESH_SECONDS = 10.0  # how often each worker refreshes its drift and store gauges between scrapes


def create_app(settings: ServeSettings, api_key: str | None) -> FastAPI:
    """The app for ``settings``; ``api_key`` guards feedback, review and admin (None: those are off)."""
    service = Service(settings, api_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks = [asyncio.create_task(_start_then_watch(service))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.to_thread(service.close)
            metrics.process_exiting()

    app = FastAPI(
        title="imgclf",
        version=__version__,
        description="Image classification as a service: predict, explain, feedback, human review, drift and metrics.",
        lifespan=lifespan,
    )
    app.state.service = service
    http_errors.install(app)
    for module in (routes_predict, routes_feedback, routes_ops, routes_pages):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(RequestMetrics)  # added last: outermost, so refused bodies are counted too
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory each worker process calls: settings from the environment (see server.py)."""
    settings = ServeSettings.from_env()
    return create_app(settings, read_api_key(settings.api_key_file))


async def _start_then_watch(service: Service) -> None:
    await asyncio.to_thread(service.start)
    last_refresh = 0.0
    interval = service.settings.watch_seconds
    while True:
        await asyncio.sleep(min(interval, METRICS_REFRESH_SECONDS) if interval else METRICS_REFRESH_SECONDS)
        try:
            if interval or not service.ready:  # a service that failed to start keeps trying, watching or not
                await asyncio.to_thread(service.watch_once)
            if time.monotonic() - last_refresh >= METRICS_REFRESH_SECONDS:
                last_refresh = time.monotonic()
                await asyncio.to_thread(service.refresh_metrics)
        except Exception:  # noqa: BLE001 - a failed check must not stop the next one
            log.exception("checking for a new model or refreshing metrics failed")


class RequestMetrics:
    """ASGI middleware: count and time every request by its route template (never the raw path,
    which a client controls); mark every answer ``X-Content-Type-Options: nosniff`` and with the
    worker process that answered it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        worker = str(os.getpid())  # which worker process answered: for operators (and the multi-worker tests)

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Content-Type-Options", "nosniff")
                headers.append("X-Imgclf-Worker", worker)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(route=route, method=scope.get("method", ""), status=str(status)).inc()
            metrics.LATENCY.labels(route=route).observe(time.perf_counter() - start)
