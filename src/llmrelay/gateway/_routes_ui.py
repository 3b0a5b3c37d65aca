"""The web console: static files under ``/ui``, from the package data in ``gateway/ui/``.

::

    GET /ui              308 to /ui/
    GET /ui/             index.html (the single-page console: Deliberate, Usage, Providers, Keys)
    GET /ui/{path}       one of the files shipped in gateway/ui/ (app.js, app.css, vendor/...), else 404

The files are static and carry no data: every figure the console shows comes from the JSON/SSE routes
(``/api/whoami``, ``/api/deliberations``, ``/api/usage``, ``/api/providers``, ``/api/keys``), which take
the gateway key as every other route does. So these routes need no key; the page asks for one (kept in
``sessionStorage``) and sends it as ``Authorization: Bearer``.

What is served is decided once, when the routes are added: the set of regular files under ``ui/``, by
their relative POSIX path (dot files and symlinks left out). A request names one of them exactly or gets
404, so ``..``, encoded slashes and absolute paths can never reach another file (the whitelist, not a
path check, is the defence). Each answer has its content type from a table (unknown suffixes are not
served), an ``ETag`` (``If-None-Match`` gives 304), ``Cache-Control`` (``no-cache`` for the console's
own files, so an upgrade shows at once; a year, ``immutable``, for ``vendor/`` files, whose names carry
their version), and a strict ``Content-Security-Policy``: scripts, styles and connections from this
origin only, no inline script or style, no frames, no plugins.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from aiohttp import web

__all__ = ["CONTENT_SECURITY_POLICY", "UiFile", "add_ui_routes", "ui_files"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The console's CSP: everything from this origin, nothing inline, nothing framed."""

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
"""The suffixes served and their types; a file with any other suffix is not served."""

_NO_CACHE = "no-cache"
_IMMUTABLE = "public, max-age=31536000, immutable"

_SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class UiFile:
    """One served file: its bytes, content type, ETag and ``Cache-Control``."""

    body: bytes
    content_type: str
    etag: str
    cache_control: str


def ui_files(root: Traversable | None = None) -> dict[str, UiFile]:
    """Every servable file under ``root`` (default: the package's ``gateway/ui``), keyed by its relative
    POSIX path (``app.js``, ``vendor/chart-4.6.1.umd.min.js``)."""
    base = root if root is not None else files(__package__ or "llmrelay.gateway") / "ui"
    found: dict[str, UiFile] = {}

    def walk(node: Traversable, prefix: str) -> None:
        if not node.is_dir():
            return
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.name.startswith(".") or (isinstance(child, Path) and child.is_symlink()):
                continue
            if child.is_dir():
                walk(child, f"{name}/")
                continue
            suffix = "." + child.name.rsplit(".", 1)[-1] if "." in child.name else ""
            content_type = _CONTENT_TYPES.get(suffix.lower())
            if content_type is None and child.name.upper().startswith("LICENSE"):
                content_type = _CONTENT_TYPES[".txt"]
            if content_type is None:
                continue
            body = child.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            cache = _IMMUTABLE if name.startswith("vendor/") else _NO_CACHE
            found[name] = UiFile(body, content_type, etag, cache)

    walk(base, "")
    return found


def _answer(request: web.Request, served: UiFile) -> web.Response:
    headers = {**_SECURITY_HEADERS, "cache-control": served.cache_control, "etag": served.etag}
    if served.etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    headers["content-type"] = served.content_type
    return web.Response(body=served.body, headers=headers)


def _not_found() -> web.Response:
    return web.json_response(
        {"error": {"type": "not_found", "message": "no such console file; the console is at /ui/"}},
        status=404,
        headers={"x-content-type-options": "nosniff", "cache-control": _NO_CACHE},
    )


def add_ui_routes(app: web.Application, root: Traversable | None = None) -> None:
    """``GET /ui``, ``/ui/`` and ``/ui/{path}`` (see the module docstring), serving ``ui_files(root)``."""
    served = ui_files(root)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/ui/")

    async def index(request: web.Request) -> web.Response:
        page = served.get("index.html")
        return _not_found() if page is None else _answer(request, page)

    async def asset(request: web.Request) -> web.Response:
        # The raw path, not the decoded match: ``/ui/a%2Fb`` names no file, whatever it decodes to.
        raw = request.raw_path.split("?", 1)[0]
        name = raw[len("/ui/") :] if raw.startswith("/ui/") else ""
        page = served.get(name)
        return _not_found() if page is None else _answer(request, page)

    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{path:.+}", asset)
