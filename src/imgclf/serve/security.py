"""Hardening: the API key that guards feedback, review and admin (and predict, when asked), and
the request body limit.

The key comes from ``IMGCLF_API_KEY`` or a file (``--api-key-file``); clients send it as the
``X-API-Key`` header (or ``Authorization: Bearer KEY``). It is compared in constant time. With no
key configured, guarded endpoints are refused rather than left open: `imgclf serve` makes up a
random key and prints it when none is given, as Jupyter does with its token.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from ..errors import UserError

API_KEY_ENV = "IMGCLF_API_KEY"
API_KEY_HEADER = "X-API-Key"
MIN_KEY_CHARS = 12
MAX_KEY_CHARS = 512

api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the service's API key")


def read_api_key(api_key_file: str | None) -> str | None:
    """The configured key: the file's first line when a file is given, else ``IMGCLF_API_KEY``, else None."""
    if api_key_file:
        try:
            text = Path(api_key_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the API key file {api_key_file} ({exc.__class__.__name__})") from None
        key = (text.strip().splitlines() or [""])[0].strip()
        source = f"the API key file {api_key_file}"
    else:
        key = os.environ.get(API_KEY_ENV, "").strip()
        source = API_KEY_ENV
        if not key:
            return None
    if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise UserError(f"the key in {source} must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} printable characters")
    return key


def new_api_key() -> str:
    return secrets.token_urlsafe(24)


class KeyGuard:
    """Checks a presented key against the configured one."""

    def __init__(self, key: str | None):
        self._key = key.encode() if key else None

    @property
    def configured(self) -> bool:
        return self._key is not None

    def check(self, presented: str | None) -> None:
        if self._key is None:
            raise HTTPException(
                403, "this service has no API key configured (set IMGCLF_API_KEY or --api-key-file), so this endpoint is off"
            )
        if not presented:
            raise HTTPException(401, f"this endpoint needs the API key in the {API_KEY_HEADER} header",
                                headers={"WWW-Authenticate": API_KEY_HEADER})  # fmt: skip
        if not hmac.compare_digest(presented.encode("utf-8", "replace"), self._key):
            raise HTTPException(403, "the API key is wrong")


def _presented(request: Request, header_key: str | None) -> str | None:
    if header_key:
        return header_key
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


async def require_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """Dependency: the request must carry the API key. (Async, like the next: a plain function
    would be run in a worker thread, a thread hop per request for a string comparison.)"""
    request.app.state.service.guard.check(_presented(request, key))


async def require_key_if_protected(request: Request, key: str | None = Security(api_key_header)) -> None:
    """Dependency: predict and explain need the key only when the service was started with --protect-predict."""
    service = request.app.state.service
    if service.settings.protect_predict:
        service.guard.check(_presented(request, key))


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; an HTTPException, so the framework's body
    parsing passes it on as a 413 instead of calling it a malformed body."""

    def __init__(self, limit: int):
        super().__init__(413, _too_large(limit))


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before it is read, by its
    Content-Length, or as soon as a streamed (chunked) body passes the limit."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                return await _send_json(send, 400, "the Content-Length header is not a number")
            if too_big:
                return await _send_json(send, 413, _too_large(self.limit))
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, _too_large(self.limit))


def _too_large(limit: int) -> str:
    return f"the request body is larger than this service accepts ({limit:,} bytes)"


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
