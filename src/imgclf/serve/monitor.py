"""`imgclf monitor URL`: ask a running service about drift (and what it serves), as a client.

Plain HTTP with the standard library: the monitor may run on a machine with no web framework.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ..errors import UserError

DRIFT_PATH = "/v1/drift"
INFO_PATH = "/v1/info"


def monitor(url: str, *, timeout: float = 10.0, api_key: str | None = None) -> dict:
    """The service's drift report (``GET URL/v1/drift``) with ``url`` and its model's ``info``.

    ``api_key`` is sent when the service protects predict-side routes (``--protect-predict``).
    Raises UserError when the URL is not http(s), the service cannot be reached, or it refuses.
    """
    base = _base_url(url)
    drift = _get_json(base + DRIFT_PATH, timeout, api_key)
    info = _get_json(base + INFO_PATH, timeout, api_key)
    return {"url": base, "info": info, "drift": drift}


def _base_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{url!r} is not an http(s) URL of an imgclf service (e.g. http://127.0.0.1:8000)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _get_json(url: str, timeout: float, api_key: str | None) -> dict:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **({"X-API-Key": api_key} if api_key else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise UserError(f"{url} answered {exc.code}: {_detail(exc)}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach {url} ({reason})") from None
    except ValueError:
        raise UserError(f"{url} did not answer JSON; is it an imgclf service?") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read().decode("utf-8")).get("detail")
        return str(detail) if detail else exc.reason
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)
