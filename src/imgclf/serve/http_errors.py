"""Every error the service answers is JSON ``{"detail": "one sentence"}``.

FastAPI's own validation errors (a list of objects) are flattened to one sentence naming the
field; a :class:`Refused` carries a status and a reason from the service; a UserError from lower
layers (the store, the model loader) is a 422 with its message; anything unexpected is a 500 that
says no more than that (the traceback goes to the server's log, not to the client).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import UserError

log = logging.getLogger("imgclf.serve")


class Refused(Exception):
    """The service refuses a request: ``status`` (4xx/503) and a one-sentence ``reason``."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def detail(status: int, reason: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=status, headers=headers)


def validation_sentence(exc: RequestValidationError) -> str:
    """FastAPI's first validation error as a sentence: ``label (form field): Field required``."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    where = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    field = where[-1] if where else "request"
    kind = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(str(where[0]) if where else "", "field")
    return f"{field} ({kind}): {first.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused):
        return detail(exc.status, exc.reason)

    @app.exception_handler(UserError)
    async def _user_error(_: Request, exc: UserError):
        return detail(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        return detail(422, validation_sentence(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        reason = exc.detail if isinstance(exc.detail, str) else "the request was refused"
        return detail(exc.status_code, reason, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return detail(500, "internal error; the server's log has the details")
