"""Experimental monkeypatches: what the changes proposed for ``src/`` would buy, measured end to end.

The bench never edits ``src/``; ``bench/clients.py --client llmrelay-patched --patches a,b`` applies these at
runtime so a proposal can be measured in the same run as the floor. Each patch is a candidate change to
one ``src/`` function, kept behaviour-compatible with the original. Status as of commit bdf2bde, which
adopted part of them (buffered reads without the watchdog, no header copy, the C scanner and the bare-text
fast path):

- ``read``: ``_AiohttpResponse.read_chunk`` returns already-buffered bytes through
  ``StreamReader.read_nowait()`` and the end of an already-complete body without the watchdog bookkeeping;
  only a read that must wait arms the watchdog timer. (Adopted except the end-of-body half: the final
  ``b""`` read of a complete non-streaming body still arms and cancels a timer.)
- ``body``: ``HttpProvider.chat`` builds the common reply (text only) straight from the parsed body, and
  otherwise folds the body's events straight into the final ``ChatResponse`` (``fold(..., provider=,
  request_id=, warnings=)``), instead of events, fold, then ``dataclasses.replace``.
- ``send``: ``AiohttpTransport`` builds its session without ``skip_auto_headers=("User-Agent",)`` and sends an
  explicit ``User-Agent: llmrelay/<version>`` instead (a session-level skip list sends every request down
  aiohttp's slow path in ``ClientRequest.update_auto_headers``: a ``CIMultiDict`` of the skipped names plus a
  copy of the headers), reuses one ``aiohttp.ClientTimeout`` per ``Timeouts``, and
  ``_AiohttpResponse`` keeps aiohttp's case-insensitive ``resp.headers`` instead of copying them into a
  lower-cased dict (that last part adopted).
- ``json``: ``OpenAIChatStreamDecoder._event`` parses with the C scanner (``JSONDecoder().scan_once``,
  falling back to ``json.loads`` for anything unusual) and takes a fast path for the common
  ``{"content": "..."}`` delta. (Adopted; kept for measuring older checkouts.)

``DEFAULT`` is what is still open.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

ALL = ("read", "body", "send", "json")
DEFAULT = ("read", "body", "send")


def apply(names: Sequence[str]) -> None:
    for name in names:
        {"read": _patch_read, "body": _patch_body, "send": _patch_send, "json": _patch_json}[name]()


def _patch_read() -> None:
    from llmrelay import _transport as t

    original = t._AiohttpResponse.read_chunk

    async def read_chunk(self: Any) -> bytes:
        if not self._eof and self._expired is None and self._total_deadline is None:
            content = self._resp.content
            try:
                chunk = content.read_nowait()
            except Exception:
                chunk = b""  # let the slow path raise and map it
            if chunk:
                return chunk
            if content.at_eof() and content.exception() is None:
                self._eof = True
                self._cancel_watch()
                return b""
        return await original(self)

    t._AiohttpResponse.read_chunk = read_chunk  # type: ignore[method-assign]


def _patch_send() -> None:
    import asyncio

    import aiohttp

    import llmrelay
    from llmrelay import _transport as t

    user_agent = f"llmrelay/{llmrelay.__version__}"
    timeouts_cache: dict[Any, Any] = {}

    def _make_session(self: Any) -> Any:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        if self._trust_env:
            import urllib.request

            self._proxies = urllib.request.getproxies_environment()
            self._proxy_cache = {}
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=True,
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def send(self: Any, request: Any, timeouts: Any) -> Any:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            session = self._session = self._make_session()
            self._loop = loop
        started = loop.time()
        total_deadline = started + timeouts.total if timeouts.total is not None else None
        wait = t._min_none(timeouts.first_byte, timeouts.total)
        client_timeout = timeouts_cache.get(timeouts.connect)
        if client_timeout is None:
            client_timeout = timeouts_cache[timeouts.connect] = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect
            )
        headers = dict(request.headers)
        headers.setdefault("user-agent", user_agent)
        try:
            async with asyncio.timeout(wait):
                resp = await session.request(
                    request.method,
                    request.url,
                    headers=headers,
                    data=request.body,
                    timeout=client_timeout,
                    allow_redirects=False,
                    proxy=self._proxy_for(request.url) if self._proxies else None,
                )
        except aiohttp.ConnectionTimeoutError:
            raise t.ConnectTimeout(f"connecting took longer than {timeouts.connect}s (Timeouts.connect)") from None
        except TimeoutError:
            if timeouts.total is not None and wait == timeouts.total and timeouts.total != timeouts.first_byte:
                raise t.TotalTimeout(f"no response within the total timeout of {timeouts.total}s") from None
            raise t.FirstByteTimeout(
                f"no response headers within {timeouts.first_byte}s (Timeouts.first_byte)"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise t._network_error(exc, request.url) from None
        return t._AiohttpResponse(resp, loop, timeouts.idle, total_deadline, timeouts.total)

    original_init = t._AiohttpResponse.__init__

    def __init__(self: Any, resp: Any, loop: Any, idle: Any, total_deadline: Any, total: Any) -> None:
        self._resp = resp
        self._loop = loop
        self._idle = idle
        self._total_deadline = total_deadline
        self._total = total
        self._reading_since = None
        self._task = None
        self._handle = None
        self._expired = None
        self._eof = False
        self.status = resp.status
        self.headers = resp.headers  # case-insensitive already

    assert original_init is not None
    t.AiohttpTransport._make_session = _make_session  # type: ignore[method-assign]
    t.AiohttpTransport.send = send  # type: ignore[method-assign]
    t._AiohttpResponse.__init__ = __init__  # type: ignore[method-assign]


def _patch_body() -> None:
    from llmrelay import _http_provider as hp
    from llmrelay._accumulate import fold
    from llmrelay._errors import LlmError
    from llmrelay._provider import emit_warnings
    from llmrelay.wire.http_errors import request_id_from
    from llmrelay.wire.openai_chat import OpenAIChatDialect
    from llmrelay.wire.openai_chat.decode import events_from_body

    original = hp.HttpProvider.chat

    async def chat(self: Any, request: Any) -> Any:
        if type(self.dialect) is not OpenAIChatDialect:
            return await original(self, request)
        http_request, encoded = self._build(request, stream=False)
        emit_warnings(self.name, encoded.warnings)
        response = await self._send(http_request)
        try:
            body = await response.read()
        except LlmError as exc:
            raise exc.with_context(provider=self.name) from None
        finally:
            await response.aclose()
        request_id = request_id_from(response.headers)
        decoded = _plain_reply(body, self.name, request_id, encoded.warnings)
        if decoded is None:
            decoded = fold(events_from_body(body), provider=self.name, request_id=request_id, warnings=encoded.warnings)
        if decoded.error is not None:
            raise decoded.error.with_context(provider=self.name, request_id=request_id)
        return decoded

    hp.HttpProvider.chat = chat  # type: ignore[method-assign]


def _plain_reply(body: bytes, provider: str, request_id: Any, warnings: Any) -> Any:
    """The common non-streaming reply (text only: no tools, reasoning, refusal or error) built directly;
    ``None`` sends anything else down the general events-and-fold path."""
    from llmrelay._types import ChatResponse
    from llmrelay.wire.openai_chat.maps import map_finish_reason, parse_usage

    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if type(payload) is not dict or payload.get("error"):
        return None
    choices = payload.get("choices")
    if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
        return None
    choice = choices[0]
    message = choice.get("message")
    if choice.get("index", 0) != 0 or type(message) is not dict:
        return None
    content = message.get("content")
    if (
        type(content) is not str
        or message.get("tool_calls")
        or message.get("reasoning_content")
        or message.get("reasoning")
        or message.get("refusal")
    ):
        return None
    finish = choice.get("finish_reason")
    finish = finish if type(finish) is str else None
    model = payload.get("model")
    return ChatResponse(
        text=content,
        finish_reason=map_finish_reason(finish),
        finish_reason_raw=finish,
        usage=parse_usage(payload.get("usage")),
        model=model if type(model) is str and model else None,
        provider=provider,
        request_id=request_id,
        warnings=tuple(warnings),
    )


def _patch_json(cls: Any = None) -> None:
    """Patch ``OpenAIChatStreamDecoder`` (or the given subclass of it)."""
    from llmrelay._errors import ProtocolError
    from llmrelay.wire.openai_chat import decode as d

    scan_once = json.JSONDecoder().scan_once
    loads = json.loads
    cls = cls or d.OpenAIChatStreamDecoder
    original_choice = cls._choice

    def _event(self: Any, kind: str, data: str) -> None:
        state = self._state
        if data == "[DONE]":
            state.done()
            return
        try:
            try:
                chunk, end = scan_once(data, 0)
                if end != len(data):
                    chunk = loads(data)
            except StopIteration:
                chunk = loads(data)
        except ValueError:
            state.fail(ProtocolError(f"a stream event is not JSON: {data[:120]!r}"))
            return
        if type(chunk) is not dict:
            state.fail(ProtocolError(f"a stream event is not a JSON object: {data[:120]!r}"))
            return
        usage = chunk.get("usage")
        if usage:
            state.usage = d.parse_usage(usage) or state.usage
        if kind == "error" or chunk.get("error"):
            state.fail(d.error_from_payload(chunk, body=data))
            return
        model = chunk.get("model")
        if model and type(model) is str:
            state.model = model
        choices = chunk.get("choices")
        if not choices or type(choices) is not list:
            return
        for choice in choices:
            if type(choice) is dict and choice.get("index", 0) == 0:
                delta = choice.get("delta")
                if (
                    type(delta) is dict
                    and len(delta) == 1
                    and type(content := delta.get("content")) is str
                    and not choice.get("finish_reason")
                ):
                    state.text(content)
                    continue
                original_choice(self, choice)

    cls._event = _event  # type: ignore[method-assign]
