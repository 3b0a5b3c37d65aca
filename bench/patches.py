"""Experimental monkeypatches: what the changes proposed for ``src/`` would buy, measured end to end.

The bench never edits ``src/``; ``bench/clients.py --client llmrelay-patched --patches a,b`` applies these at
runtime so a proposal can be measured in the same run as the floor. Each patch is a candidate change to
one ``src/`` function, kept behaviour-compatible with the original. Status as of commit a57d3a5: bdf2bde and
a57d3a5 adopted most of them (buffered reads and the end of the body without the watchdog, no header
copies, cached client timeouts and headers, the C scanner, the bare-text fast path, folding the body's
events directly):

- ``read``: ``_AiohttpResponse.read_chunk`` returns already-buffered bytes through
  ``StreamReader.read_nowait()`` and the end of an already-complete body without the watchdog bookkeeping;
  only a read that must wait arms the watchdog timer. (Adopted.)
- ``body``: ``HttpProvider.chat`` builds the common reply (text only) straight from the parsed body, and
  otherwise folds the body's events straight into the final ``ChatResponse`` (``fold(..., provider=,
  request_id=, warnings=)``), instead of events, fold, then ``dataclasses.replace``. (The fold half was
  adopted; the direct text-only reply is still open.)
- ``send``: ``AiohttpTransport._make_session`` drops ``skip_auto_headers=("User-Agent",)`` and sets a
  default ``User-Agent: llmrelay/<version>`` header instead: a session-level skip list sends every request
  down aiohttp's slow path in ``ClientRequest.update_auto_headers`` (a ``CIMultiDict`` of the skipped
  names plus a copy of the request headers). (Still open; the cached ``ClientTimeout`` and the header
  copies this patch also covered at first were adopted in a57d3a5.)
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
DEFAULT = ("body", "send")


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
    """The session sends ``User-Agent: llmrelay/<version>`` as a default header instead of skipping it."""
    import aiohttp

    import llmrelay
    from llmrelay import _transport as t

    user_agent = f"llmrelay/{llmrelay.__version__}"

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
            headers={"User-Agent": user_agent},
            timeout=aiohttp.ClientTimeout(total=None),
        )

    t.AiohttpTransport._make_session = _make_session  # type: ignore[method-assign]


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
