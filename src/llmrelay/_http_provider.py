"""The I/O half of every HTTP provider: send an encoded request through the transport, turn HTTP errors
into typed errors, and feed response bytes to the dialect's decoder.

Subclasses supply the endpoint (URL, auth headers) and a ``Dialect``; this class does the rest, the same
way for every provider.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._accumulate import events_for, fold
from ._builders import builder
from ._errors import IdleTimeout, InvalidRequestError, LlmError, MissingApiKey, redact_bytes
from ._events import TEXT_CHUNKS_OPTION, Done, StreamEvent
from ._provider import ChatStream, EventSource, Provider, emit_warnings
from ._transport import (
    AiohttpTransport,
    HttpRequest,
    HttpResponse,
    Timeouts,
    Transport,
    read_body,
    read_error_body,
)
from ._types import ChatRequest, ChatResponse
from .profiles import ModelProfile, profile_for
from .wire.dialect import Dialect, EncodedRequest, StreamDecoder
from .wire.http_errors import json_or_none, request_id_from

__all__ = ["HttpProvider", "clean_key", "require_key"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""The default ``HttpProvider.max_body_bytes``: far above any JSON reply (a long answer is well under a
megabyte; inline images a few megabytes), far below what would exhaust a machine's memory."""
_http_request = builder(HttpRequest, ("method", "url", "headers", "body"))
"""``HttpRequest(...)`` by position (``llmrelay._builders``): one per call."""
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""One encoder for every request: ``json.dumps`` with options builds a new one per call."""


class HttpProvider(Provider):
    """A provider reached over HTTP with one dialect. Owns a connection pool unless given ``transport``."""

    dialect: Dialect
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest whole JSON body read into memory (a non-streamed reply, or a JSON document answering a
    streaming request); a larger or endless one ends the call with ``ProtocolError``. Raise it on the
    instance (``provider.max_body_bytes = 256 * 2**20``) for providers that send larger replies. Streams
    are not limited as a whole (each of their lines is, by the dialect's decoder), and error bodies are
    cut at 1 MiB."""

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
        self._api_key = clean_key(api_key, name, "api_key=")
        self._extra_headers = _clean_headers(headers or {}, name, "headers=")
        self._headers_cache: dict[bool, dict[str, str]] = {}
        self._checked_headers: dict[str, str] | None = None
        self._secret_list: tuple[str, ...] | None = None
        self.timeouts = timeouts or Timeouts()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    def profile(self) -> ModelProfile:
        """The default model's profile (``llmrelay.profiles``), by this provider's name, model and dialect."""
        return profile_for(self.name, self.model, dialect=self.dialect.name)

    # --- endpoint hooks (overridden per provider) ---------------------------------------------------

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        raise NotImplementedError

    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _auth_hint(self) -> str | None:
        """What to check when the provider rejects the credentials."""
        return None

    # --- shared machinery ---------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        """Every credential this provider holds, scrubbed from each error it hands out: the key, the
        values of credential-like headers (and the token after a scheme such as ``Bearer``), and
        credentials in the base URL (``user:password@``, ``?key=``)."""
        found = self._secret_list
        if found is None:
            values = [self._api_key] if self._api_key else []
            for header, value in self._request_headers().items():
                if _is_credential_name(header):
                    values.append(value)
                    values.append(value.partition(" ")[2].strip())
            values.extend(_url_credentials(self.base_url))
            found = self._secret_list = tuple(dict.fromkeys(v for v in values if v))
        return found

    def _request_headers(self) -> dict[str, str]:
        """The auth and configured headers, checked once: a line break in one would inject a header."""
        headers = self._checked_headers
        if headers is None:
            headers = _clean_headers({**self._auth_headers(), **self._extra_headers}, self.name, "its settings")
            self._checked_headers = headers
        return headers

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
                **self._request_headers(),
            }
        if encoded.headers:
            headers = {**base, **_clean_headers(encoded.headers, self.name, "the request", InvalidRequestError)}
        else:
            headers = base
        body = _encode_json(encoded.body).encode("utf-8")
        return _http_request("POST", self._url(encoded, model=model, stream=stream), headers, body), encoded

    async def _send(self, http_request: HttpRequest) -> HttpResponse:
        try:
            response = await self._transport.send(http_request, self.timeouts)
        except LlmError as exc:
            raise exc.with_context(provider=self.name, secrets=self._secrets()) from None
        if response.status >= 400:
            body = await read_error_body(response)
            raise self._http_error(response.status, response.headers, body)
        if response.status >= 300:
            body = await read_error_body(response)
            raise self._redirect_error(http_request.url, response.status, response.headers, body)
        return response

    async def _read_whole(self, response: HttpResponse) -> bytes:
        """A whole (non-streamed) body, at most ``max_body_bytes``; the response is closed either way."""
        try:
            return await read_body(response, self.max_body_bytes)
        except LlmError as exc:
            raise exc.with_context(provider=self.name, secrets=self._secrets()) from None
        finally:
            await response.aclose()

    async def _get_json(self, url: str) -> Any:
        """``GET url`` (model lists): its JSON, or ``None`` when the body is not JSON; bounded like ``chat``."""
        response = await self._send(HttpRequest("GET", url, self._request_headers()))
        body = await self._read_whole(response)
        return json_or_none(body)

    def _redirect_error(self, url: str, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        """A 3xx answer: the transport follows no redirects, since a POST must not be silently re-sent (or
        turned into a GET) elsewhere; the configured URL is the one to fix."""
        from urllib.parse import urljoin

        location = headers.get("location")
        target = f"to {urljoin(url, location)}" if location else "without a Location header"
        text = " ".join(redact_bytes(body, self._secrets()).decode("utf-8", "replace").split())
        message = (
            f"the server redirected the request (HTTP {status}) {target}; llmrelay does not follow redirects "
            "(a POST must not be re-sent elsewhere unasked): set base_url to the final URL"
        )
        if text:
            message += f" (the server said: {text[:200]})"
        error = InvalidRequestError(message, status=status, body=text or None)
        return error.with_context(provider=self.name, request_id=request_id_from(headers), secrets=self._secrets())

    def _http_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        secrets = self._secrets()
        error = self.dialect.decode_error(status, headers, redact_bytes(body, secrets))
        hint = self._auth_hint() if error.kind == "auth" else None
        return error.with_context(provider=self.name, request_id=request_id_from(headers), hint=hint, secrets=secrets)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        http_request, encoded = self._build(request, stream=False)
        emit_warnings(self.name, encoded.warnings)
        response = await self._send(http_request)
        body = await self._read_whole(response)
        request_id = request_id_from(response.headers)
        decoded = fold(
            self.dialect.events_from_body(body), provider=self.name, request_id=request_id, warnings=encoded.warnings
        )
        if decoded.error is not None:
            raise decoded.error.with_context(provider=self.name, request_id=request_id, secrets=self._secrets())
        return decoded

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        # Nothing is checked here: a request that cannot be built raises on entering the stream.
        async def open_source() -> EventSource:
            http_request, encoded = self._build(request, stream=True)
            stream.warnings.extend(encoded.warnings)
            emit_warnings(self.name, encoded.warnings)
            response = await self._send(http_request)
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/json":
                # The server answered a streaming request with one JSON document (it does not stream, or it
                # sent an error object with status 200): decode it as a body and replay its events.
                return await self._replay_body(response)
            return _HttpEventSource(
                response, self._decoder_for(request), self.name, self._secrets, idle=self.timeouts.idle
            )

        stream = ChatStream(open_source, provider=self.name, model=request.model or self.model)
        return stream

    def _decoder_for(self, request: ChatRequest) -> StreamDecoder:
        """The dialect's stream decoder; its ``chunking_decoder`` when the request's consumer takes
        ``TextChunks`` of this dialect (``provider_options={"llmrelay": {"text_chunks": DIALECT}}``)."""
        dialect = self.dialect
        consumer = request.provider_options.get(TEXT_CHUNKS_OPTION)
        if consumer and consumer.get("text_chunks") == dialect.name:
            chunking = getattr(dialect, "chunking_decoder", None)
            if chunking is not None:
                decoder: StreamDecoder = chunking()
                return decoder
        return dialect.stream_decoder()

    async def _replay_body(self, response: HttpResponse) -> EventSource:
        body = await self._read_whole(response)
        decoded = self.dialect.decode_body(body)
        request_id = request_id_from(response.headers)
        if decoded.error is not None:
            error = decoded.error.with_context(provider=self.name, request_id=request_id, secrets=self._secrets())
            decoded = dataclasses.replace(decoded, error=error)
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

    __slots__ = (
        "_clock",
        "_decoder",
        "_done",
        "_eof",
        "_idle",
        "_provider",
        "_response",
        "_secrets",
        "model",
        "request_id",
    )

    def __init__(
        self,
        response: HttpResponse,
        decoder: StreamDecoder,
        provider: str,
        secrets: Callable[[], Sequence[str]] = tuple,
        *,
        idle: float | None = None,
    ) -> None:
        import asyncio

        self._response = response
        self._decoder = decoder
        self._provider = provider
        self._secrets = secrets
        """The provider's credentials, asked for only when the stream ends with an error."""
        self.request_id = request_id_from(response.headers)
        self.model: str | None = None
        self._done = False
        self._eof = False
        self._idle = idle
        """``Timeouts.idle``: bytes that complete no event (keep-alive comments) are not progress."""
        self._clock = asyncio.get_running_loop().time

    async def read(self) -> Sequence[StreamEvent]:
        decoder = self._decoder
        idle = self._idle
        # Idle time is counted from here, when this call starts waiting: the time the caller spent between
        # two reads is not the provider's. The transport's own timer covers a connection sending nothing.
        waiting_since = self._clock() if idle is not None else 0.0
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
            if idle is not None and self._clock() - waiting_since >= idle:
                error = IdleTimeout(
                    f"no event from the provider for {idle}s, only keep-alive comments or blank lines (Timeouts.idle)",
                    provider=self._provider,
                )
                return self._finish(decoder.fail(error))
        return ()

    def _finish(self, events: list[StreamEvent]) -> list[StreamEvent]:
        self._done = True
        if events:
            last = events[-1]
            if type(last) is Done:
                self.model = last.model
                if last.error is not None:
                    error = last.error.with_context(
                        provider=self._provider, request_id=self.request_id, secrets=self._secrets()
                    )
                    events[-1] = dataclasses.replace(last, error=error)
        return events

    async def aclose(self) -> None:
        # At once, even after the end marker: the transport pools the connection when the body has already
        # ended, and drops it otherwise (a server keeping the body open costs the pool one connection).
        await self._response.aclose()


def require_key(api_key: str | None, env_var: str | None, provider: str, *, required: bool) -> str | None:
    """The explicit key, else the environment variable's value, cleaned by ``clean_key`` (surrounding
    whitespace such as a pasted trailing newline is dropped; a control character inside is a
    ``ConfigError``); ``MissingApiKey`` when required and absent."""
    import os

    from_env = bool(env_var and api_key and os.environ.get(env_var) == api_key)  # read for us by a registry
    key = clean_key(api_key, provider, f"${env_var}" if from_env else "api_key=")
    if not key and env_var:
        key = clean_key(os.environ.get(env_var), provider, f"${env_var}")
    if not key and required:
        where = f"set {env_var} or pass api_key=" if env_var else "pass api_key="
        raise MissingApiKey(f"no API key for {provider}: {where}", provider=provider)
    return key or None


def clean_key(key: str | None, provider: str, source: str) -> str | None:
    """``key`` without surrounding whitespace (a trailing ``"\\n"`` or ``"\\r\\n"`` copied into an environment
    variable or read from a file is a common slip), ``None`` when nothing is left.

    A line break or another control character inside the key is refused with a ``ConfigError`` before
    anything is sent (sent as a header it would inject one). The message names the provider and
    ``source`` (``$OPENAI_API_KEY``, ``api_key=``), never the key.
    """
    if not key:
        return None
    key = key.strip()
    if _CONTROL.search(key):
        from .config._errors import ConfigError

        raise ConfigError(
            f"the API key for {provider} (from {source}) contains a line break or another control character; "
            "set it again without them",
            provider=provider,
        )
    return key or None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A valid header name (RFC 9110 ``token``)."""
_CREDENTIAL_WORDS = ("key", "token", "secret", "password", "auth", "credential", "cookie", "signature")
_URL_CREDENTIALS = ("key", "api_key", "apikey", "api-key", "access_token", "token", "sig", "signature", "password")


def _is_credential_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _CREDENTIAL_WORDS)


def _clean_headers(
    headers: Mapping[str, str], provider: str, where: str, error: type[LlmError] | None = None
) -> dict[str, str]:
    """The headers with surrounding whitespace dropped from each value. A name that is not a token or a
    value with a control character inside (a line break would inject a header) is refused, with a
    ``ConfigError`` (or ``error``) that names the header, never its value."""
    cleaned = {}
    for name, value in headers.items():
        value = value.strip()
        cleaned[name] = value
        if not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            message = (
                f"the header {name[:40]!r} for {provider} (from {where}) contains a line break "
                "or another character not allowed in HTTP headers"
            )
            if error is not None:
                raise error(message, provider=provider)
            from .config._errors import ConfigError

            raise ConfigError(message, provider=provider)
    return cleaned


def _url_credentials(url: str) -> list[str]:
    """The password in a URL's user info and the values of credential-like query parameters."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [value for name, value in parse_qsl(parts.query) if name.lower() in _URL_CREDENTIALS]
    return found
