"""The I/O half of every HTTP provider: send an encoded request through the transport, turn HTTP errors
into typed errors, and feed response bytes to the dialect's decoder.

Subclasses supply the endpoint (URL, auth headers) and a ``Dialect``; this class does the rest, the same
way for every provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ._accumulate import events_for, fold
from ._errors import InvalidRequestError, LlmError, MissingApiKey
from ._events import Done, StreamEvent
from ._provider import ChatStream, EventSource, Provider, emit_warnings
from ._transport import AiohttpTransport, HttpRequest, HttpResponse, Timeouts, Transport, read_error_body
from ._types import ChatRequest, ChatResponse
from .wire.dialect import Dialect, EncodedRequest, StreamDecoder
from .wire.http_errors import request_id_from

__all__ = ["HttpProvider", "require_key"]

_DRAIN_AFTER_DONE = 0.25
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""One encoder for every request: ``json.dumps`` with options builds a new one per call."""


class HttpProvider(Provider):
    """A provider reached over HTTP with one dialect. Owns a connection pool unless given ``transport``."""

    dialect: Dialect

    def __init__(
        self,
        *,
        name: str,
        model: str | None,
        base_url: str,
        dialect: Dialect,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.dialect = dialect
        self._api_key = api_key
        self._extra_headers = dict(headers or {})
        self._headers_cache: dict[bool, dict[str, str]] = {}
        self.timeouts = timeouts or Timeouts()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    # --- endpoint hooks (overridden per provider) ---------------------------------------------------

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        raise NotImplementedError

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _auth_hint(self) -> str | None:
        """What to check when the provider rejects the credentials."""
        return None

    # --- shared machinery ---------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [self._api_key] if self._api_key else []

    def _resolve_model(self, request: ChatRequest) -> str:
        model = request.model or self.model
        if not model:
            raise InvalidRequestError(
                "no model given: pass model= to the provider or to the ChatRequest", provider=self.name
            )
        return model

    def _build(self, request: ChatRequest, *, stream: bool) -> tuple[HttpRequest, EncodedRequest]:
        model = self._resolve_model(request)
        encoded = self.dialect.encode(request, model=model, stream=stream)
        base = self._headers_cache.get(stream)
        if base is None:
            # Auth and configured headers do not change after construction: build them once per mode.
            base = self._headers_cache[stream] = {
                "content-type": "application/json",
                "accept": "text/event-stream" if stream else "application/json",
                **self._auth_headers(),
                **self._extra_headers,
            }
        headers = {**base, **encoded.headers} if encoded.headers else base
        body = _encode_json(encoded.body).encode("utf-8")
        return HttpRequest("POST", self._url(encoded, model=model, stream=stream), headers, body), encoded

    async def _send(self, http_request: HttpRequest) -> HttpResponse:
        try:
            response = await self._transport.send(http_request, self.timeouts)
        except LlmError as exc:
            raise exc.with_context(provider=self.name) from None
        if response.status >= 400:
            body = await read_error_body(response)
            raise self._http_error(response.status, response.headers, body)
        return response

    def _http_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        for secret in self._secrets():
            body = body.replace(secret.encode("utf-8"), b"[REDACTED]")
        error = self.dialect.decode_error(status, headers, body)
        hint = self._auth_hint() if error.kind == "auth" else None
        return error.with_context(provider=self.name, request_id=request_id_from(headers), hint=hint)

    async def chat(self, request: ChatRequest) -> ChatResponse:
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
        decoded = fold(
            self.dialect.events_from_body(body), provider=self.name, request_id=request_id, warnings=encoded.warnings
        )
        if decoded.error is not None:
            raise decoded.error.with_context(provider=self.name, request_id=request_id)
        return decoded

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        http_request, encoded = self._build(request, stream=True)

        async def open_source() -> EventSource:
            emit_warnings(self.name, encoded.warnings)
            response = await self._send(http_request)
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/json":
                # The server answered a streaming request with one JSON document (it does not stream, or it
                # sent an error object with status 200): decode it as a body and replay its events.
                return await self._replay_body(response)
            return _HttpEventSource(response, self.dialect.stream_decoder(), self.name)

        return ChatStream(open_source, provider=self.name, model=request.model or self.model, warnings=encoded.warnings)

    async def _replay_body(self, response: HttpResponse) -> EventSource:
        try:
            body = await response.read()
        except LlmError as exc:
            raise exc.with_context(provider=self.name) from None
        finally:
            await response.aclose()
        decoded = self.dialect.decode_body(body)
        request_id = request_id_from(response.headers)
        if decoded.error is not None:
            decoded.error.with_context(provider=self.name, request_id=request_id)
        return _ReplaySource(events_for(decoded), request_id, decoded.model)

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()


class _ReplaySource:
    """Events already decoded, served in one batch."""

    def __init__(self, events: list[StreamEvent], request_id: str | None, model: str | None) -> None:
        self._events: list[StreamEvent] | None = events
        self.request_id = request_id
        self.model = model

    async def read(self) -> Sequence[StreamEvent]:
        events, self._events = self._events, None
        return events or ()

    async def aclose(self) -> None:
        self._events = None


class _HttpEventSource:
    """Reads a streamed body through the dialect's decoder, in batches of events."""

    __slots__ = ("_decoder", "_done", "_eof", "_provider", "_response", "model", "request_id")

    def __init__(self, response: HttpResponse, decoder: StreamDecoder, provider: str) -> None:
        self._response = response
        self._decoder = decoder
        self._provider = provider
        self.request_id = request_id_from(response.headers)
        self.model: str | None = None
        self._done = False
        self._eof = False

    async def read(self) -> Sequence[StreamEvent]:
        decoder = self._decoder
        while not self._done:
            try:
                chunk = await self._response.read_chunk()
            except LlmError as exc:
                return self._finish(decoder.fail(exc.with_context(provider=self._provider)))
            if not chunk:
                self._eof = True
                return self._finish(decoder.close())
            events = decoder.feed(chunk)
            if events:
                if type(events[-1]) is Done:
                    return self._finish(events)
                return events
        return ()

    def _finish(self, events: list[StreamEvent]) -> list[StreamEvent]:
        self._done = True
        if events:
            last = events[-1]
            if type(last) is Done:
                self.model = last.model
                if last.error is not None:
                    last.error.with_context(provider=self._provider, request_id=self.request_id)
        return events

    async def aclose(self) -> None:
        response = self._response
        if self._done and not self._eof:
            # The stream said it was done; read the (usually empty) rest so the connection can be reused.
            import asyncio

            try:
                async with asyncio.timeout(_DRAIN_AFTER_DONE):
                    while await response.read_chunk():
                        pass
            except (TimeoutError, LlmError):
                pass
        await response.aclose()


def require_key(api_key: str | None, env_var: str | None, provider: str, *, required: bool) -> str | None:
    """The explicit key, else the environment variable's value; ``MissingApiKey`` when required and absent."""
    import os

    key = api_key or (os.environ.get(env_var) if env_var else None)
    if not key and required:
        where = f"set {env_var} or pass api_key=" if env_var else "pass api_key="
        raise MissingApiKey(f"no API key for {provider}: {where}", provider=provider)
    return key or None
