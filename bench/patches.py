"""Experimental monkeypatches: what the changes proposed for ``src/`` would buy, measured end to end.

The bench never edits ``src/``; ``bench/clients.py --client llmrelay-patched --patches a,b`` applies these at
runtime so a proposal can be measured in the same run as the floor. Each patch is a candidate change to
one ``src/`` function, kept behaviour-compatible with the original:

- ``noenv``: ``AiohttpTransport(trust_env=False)``. With ``trust_env=True`` aiohttp runs two thread-pool
  hops per request (a ``~/.netrc`` lookup and a proxy-environment lookup, ``aiohttp/client.py``
  ``ClientSession._request``). The proposal resolves the proxy environment once per transport instead.
  (Applied by the client when it builds the transport, not here.)
- ``read``: ``_AiohttpResponse.read_chunk`` returns already-buffered bytes through
  ``StreamReader.read_nowait()`` (and the end of an already-complete body) without the watchdog
  bookkeeping; only a read that must wait arms the watchdog timer.
- ``body``: ``HttpProvider.chat`` folds the body's events straight into the final ``ChatResponse``
  (``fold(..., provider=, request_id=, warnings=)``) instead of folding and then ``dataclasses.replace``.
- ``json``: ``OpenAIChatStreamDecoder._event`` parses with the C scanner (``JSONDecoder().scan_once``,
  falling back to ``json.loads`` for anything unusual) and takes a fast path for the common
  ``{"content": "..."}`` delta.
"""

from __future__ import annotations

import json
from typing import Any

ALL = ("read", "body", "json")


def apply(names: list[str]) -> None:
    for name in names:
        if name == "noenv":
            continue
        {"read": _patch_read, "body": _patch_body, "json": _patch_json}[name]()


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
        decoded = fold(events_from_body(body), provider=self.name, request_id=request_id, warnings=encoded.warnings)
        if decoded.error is not None:
            raise decoded.error.with_context(provider=self.name, request_id=request_id)
        return decoded

    hp.HttpProvider.chat = chat  # type: ignore[method-assign]


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
