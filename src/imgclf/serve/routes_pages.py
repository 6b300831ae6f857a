"""The web pages: ``/`` (try the model, flag a wrong answer) and ``/review`` (label unsure answers).

Plain HTML, JavaScript and CSS from ``pages/``, read once at import. Assets are served by name from
a fixed table, so no part of a URL ever becomes a filesystem path.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from .http_errors import Refused

router = APIRouter(tags=["pages"])

_PAGES = files(__package__).joinpath("pages")
ASSETS = {
    "app.js": "text/javascript",
    "review.js": "text/javascript",
    "common.js": "text/javascript",
    "style.css": "text/css",
}
_CONTENT = {name: _PAGES.joinpath(name).read_bytes() for name in (*ASSETS, "index.html", "review.html")}
# The pages run only their own scripts, show images only from this origin (or the browser's own
# blob: URLs of a picked file), and may not be framed by another site.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}


@router.get("/", response_class=HTMLResponse)
def index_page() -> HTMLResponse:
    """The page: drop or pick an image, see the top-k bars and the Grad-CAM overlay, flag a wrong answer."""
    return HTMLResponse(_CONTENT["index.html"], headers=PAGE_HEADERS)


@router.get("/review", response_class=HTMLResponse)
def review_page() -> HTMLResponse:
    """The reviewer's page (the data it shows needs the API key): label queued unsure answers, or skip them."""
    return HTMLResponse(_CONTENT["review.html"], headers=PAGE_HEADERS)


@router.get("/static/{name}", response_class=Response, responses={200: {"content": {"text/javascript": {}, "text/css": {}}}})
def asset(name: str) -> Response:
    """The pages' scripts and style sheet."""
    if name not in ASSETS:
        raise Refused(404, "no such file")
    return Response(_CONTENT[name], media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
