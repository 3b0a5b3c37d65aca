"""The console's static routes (``gateway._routes_ui``) over real HTTP: content types, caching, the CSP, and
404 for anything not shipped (path traversal in every spelling, raw on the socket). The page itself is
tested in a real browser in ``test_console_browser.py``."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from gateway_support import serving, upstream_config
from llmrelay.gateway._routes_ui import CONTENT_SECURITY_POLICY, ui_files
from llmrelay.testing import FakeUpstream

UI = Path(__file__).parent.parent / "src" / "llmrelay" / "gateway" / "ui"


async def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """``GET target`` written byte for byte on a socket (no client normalises the path)."""
    host, port = URL(url).host, URL(url).port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def test_the_console_files_are_served_with_types_caching_and_the_csp(upstream: FakeUpstream) -> None:
    async with serving(upstream_config(upstream)) as gw, aiohttp.ClientSession() as http:
        async with http.get(f"{gw.url}/ui", allow_redirects=False) as moved:
            assert moved.status == 308 and moved.headers["location"] == "/ui/"
        async with http.get(f"{gw.url}/ui/") as page:
            html = await page.text()
            assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert page.headers["cache-control"] == "no-cache" and page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            etag = page.headers["etag"]
        async with http.get(f"{gw.url}/ui/", headers={"if-none-match": etag}) as same:
            assert same.status == 304 and await same.read() == b""
        async with http.get(f"{gw.url}/ui/app.js") as script:
            assert script.headers["content-type"] == "text/javascript; charset=utf-8"
            assert "SseParser" in await script.text()
        async with http.get(f"{gw.url}/ui/app.css") as style:
            assert style.headers["content-type"] == "text/css; charset=utf-8"
        vendored = re.search(r'src="/ui/(vendor/chart-[0-9.]+\.umd\.min\.js)"', html)
        assert vendored is not None
        async with http.get(f"{gw.url}/ui/{vendored.group(1)}") as chart:
            assert chart.status == 200 and "immutable" in chart.headers["cache-control"]
            assert (await chart.text()).startswith("/*!\n * Chart.js v")
        async with http.get(f"{gw.url}/ui/nothing-here.js") as missing:
            assert missing.status == 404 and missing.headers["content-type"].startswith("application/json")


def test_the_page_has_no_inline_script_or_style() -> None:
    """The CSP forbids inline code; the page must not need any (the browser test sees no violation)."""
    html = (UI / "index.html").read_text()
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    for tag in re.findall(r"<script[^>]*>.*?</script>", html, flags=re.S):
        assert re.fullmatch(r'<script src="/ui/[^"]+"( defer)?></script>', tag), tag
    assert not re.search(r"\son[a-z]+=", html)  # no onclick= and the like


@pytest.mark.parametrize(
    "target",
    [
        "/ui/../pyproject.toml",
        "/ui/../app.py",
        "/ui/%2e%2e/app.py",
        "/ui/%2E%2E%2Fapp.py",
        "/ui/..%2f_relay.py",
        "/ui/vendor/../../keys.py",
        "/ui//etc/passwd",
        "/ui/%2Fetc%2Fpasswd",
        "/ui/..\\app.py",
        "/ui/app.js%00.html",
        "/ui/vendor",
        "/ui/vendor/",
        "/ui/.",
        "/ui/__init__.py",
    ],
)
async def test_nothing_outside_the_shipped_files_is_served(upstream: FakeUpstream, target: str) -> None:
    async with serving(upstream_config(upstream)) as gw:
        status, body = await raw_get(gw.url, target)
    assert status in (400, 404), (target, status)
    assert b"import" not in body and b"root:" not in body and b"[project]" not in body


def test_the_served_set_is_the_ui_directory_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.js").write_text("1")
    (tmp_path / "secret.py").write_text("x = 1")  # a suffix outside the table: never served
    (tmp_path / ".hidden.js").write_text("2")
    (tmp_path / "outside.js").symlink_to(Path(__file__))
    served = ui_files(tmp_path)
    assert sorted(served) == ["index.html", "sub/a.js"]  # no .py, no dot file, no symlink
    shipped = ui_files()
    assert {"index.html", "app.js", "app.css"} <= set(shipped)
    assert all(name.split(".")[-1] in ("html", "js", "css", "svg", "md") for name in shipped)
