"""The one pipeline every model route goes through, whatever dialect it speaks.

::

    caller   = authenticate(Authorization: Bearer / x-api-key)      -> 401 in the caller's dialect
    body     = read (at most max_body_bytes: 413), parse JSON (400), at most max_messages (400)
    decoded  = dialect.decode_request(body)                         -> 400 naming the field at fault
    stack    = resolve decoded.model (expose: 404; caller.allows: 403; unknown: 404), plus the request's own
               "fallbacks": [...] (each one the key may use) as a Fallback named after the requested model
    stack    = RateLimited(stack, scope="key:NAME", the key's rpm/tpm, on_limit="fail")  -> 429 Retry-After
    stack    = Metered(stack, ledger, key=NAME, budgets=key budget + [budgets])          -> one ledger row
    reply    = stack.chat(request)  or  stack.chat_stream(request)  -> the dialect's encoders

The failover contract, kept at the HTTP boundary: nothing is written to the client before the stream's
commit point (``first_batch``), so every wrapper below (``Fallback``, ``Retrying``, ``Router``) may still
move on and a failure there is an ordinary error status; after the first byte, a failure ends the stream
with the dialect's in-stream error event (``encoder.fail``), never a clean end.

A client that goes away cancels the handler (the server runs with ``handler_cancellation``), which
cancels the upstream call or closes the stream (and so its connection); the wrappers refund what they
reserved on cancel, and ``Metered`` writes a ``cancelled`` row.

Per-request wrappers are never closed (``aclose`` would close the registry's shared stacks below them):
they hold nothing of their own.

Every other route is wrapped in ``guard``, which answers what its handler raises the same way ``relay``
does: a ``GatewayRefusal`` with the dialect's ``error_reply``, an ``LlmError`` (a decoder's
``bad_request``, an unknown model, a provider with no key) with its ``encode_error``, and anything else
(a bug) logged with its traceback and answered 500 with a generic message, in the caller's dialect:
never a traceback, never aiohttp's plain-text 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from .._errors import LlmError, ModelNotFoundError, ProviderError
from .._events import TEXT_CHUNKS_OPTION, Done
from .._provider import Provider
from .._types import ChatRequest, Usage
from ..config import Config, ConfigError
from ..limits import LimitBackend
from ..metering import Budget, LedgerRow, Metered, RowWrites, UsageLedger
from ..registry import ModelRef, ProviderRegistry, price_overrides
from ..wire.serve import DecodedRequest, ErrorReply, ServedDialect, bad_request
from ..wire.serve_errors import answer_for
from ..wrappers import Fallback, RateLimited
from ._hooks import Authenticator, Caller, Fault, MetricsSink, RequestRecord

__all__ = [
    "INTERNAL_ERROR",
    "ErrorSpeaker",
    "Gateway",
    "GatewayRefusal",
    "Served",
    "answered_model",
    "guard",
    "secret_of",
]

log = logging.getLogger("llmrelay.gateway")

MAX_FALLBACKS = 8
"""The most models a request's own ``"fallbacks"`` may name."""

INTERNAL_ERROR = "internal gateway error (the gateway's log has the details)"
"""The message of a 500 for a bug: the traceback goes to the log, never to the caller."""

_FAULT_OF_CATEGORY: dict[str, Fault] = {
    "invalid_request": "caller",
    "authentication": "caller",
    "not_found": "caller",
    "request_too_large": "caller",
    "permission": "policy",
    "rate_limit": "policy",
    "upstream": "provider",
    "overloaded": "provider",
    "timeout": "provider",
    "internal": "gateway",
}


class GatewayRefusal(Exception):
    """A refusal of the gateway's own, answered with ``dialect.error_reply`` (a missing key, a model the
    key may not use, an oversized body)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    @property
    def fault(self) -> Fault:
        return "policy" if self.status in (403, 429) else "caller" if self.status < 500 else "gateway"


@dataclass(frozen=True, slots=True)
class Served:
    """What a route serves: its path (for records), its dialect, and what it requires."""

    route: str
    dialect: ServedDialect
    stream: bool | None = None
    """Force streaming on or off (the native routes); ``None``: the body's ``stream`` says."""
    needs_tools: bool = False
    """Refuse (400) when the resolved model's capabilities lack tools (``/api/agent``)."""

    def status_of(self, error: BaseException) -> int:
        """The HTTP status this route answers ``error`` with (for the ledger row)."""
        return self.dialect.encode_error(error).status if isinstance(error, LlmError) else 500


def secret_of(request: web.Request) -> str | None:
    """The gateway key a client presented: ``Authorization: Bearer KEY`` (OpenAI SDKs) or ``x-api-key``
    (Anthropic SDKs)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address (cached: asked per request)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def answered_model(provider: str | None, model: str | None, requested: str) -> str:
    """The model string of who answered (``PROVIDER/MODEL``, the string that reaches it again), or the
    requested one when the reply does not say."""
    if provider and model:
        return model if model.startswith(f"{provider}/") else f"{provider}/{model}"
    return model or requested


class StaticKey:
    """One gateway key from the environment (``[gateway] api_key_env``), in front of the key store: it
    authenticates as the admin caller (every model, no limits); other secrets go to the store."""

    ADMIN = Caller(key_id="env", name="admin")
    ANONYMOUS = Caller()
    """The caller of an open gateway (one shared instance: a ``Caller`` is frozen)."""

    def __init__(self, secret: str | None, store: Authenticator | None = None) -> None:
        self._secret = secret.encode() if secret else None
        self._store = store

    @property
    def open(self) -> bool:
        return self._secret is None and (self._store is None or self._store.open)

    @property
    def store(self) -> Authenticator | None:
        """The key store behind the static key (``gateway.keys.KeyStore``), if any: the console's
        ``/api/keys`` routes manage it."""
        return self._store

    async def authenticate(self, secret: str | None) -> Caller | None:
        if self.open:
            return self.ANONYMOUS
        if secret is None:
            return None
        if self._secret is not None and hmac.compare_digest(secret.encode(), self._secret):
            return self.ADMIN
        if self._store is None or self._store.open:
            return None
        return await self._store.authenticate(secret)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()


class Gateway:
    """The state every request shares: configuration, registry, authenticator, ledger, limits, metrics."""

    def __init__(
        self,
        config: Config,
        *,
        registry: ProviderRegistry,
        auth: Authenticator,
        ledger: UsageLedger,
        metrics: MetricsSink,
        limit_backend: LimitBackend,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from ..config._gateway import GatewayConfig

        self.config = config
        self.settings = config.gateway or GatewayConfig()
        self.registry = registry
        self.auth = auth
        self.ledger = ledger
        self.metrics = metrics
        self.limit_backend = limit_backend
        self.clock = clock
        self.prices = price_overrides(config)
        self.budgets = self._config_budgets()
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.writes = RowWrites()
        """The ledger rows being written: a response never waits for its row's commit; ``close`` (on
        shutdown, after the drain) waits for every one before it closes the ledger."""
        self._resolved: dict[str, ModelRef] = {}
        """``registry.resolve`` per model string that resolved: a function of the (immutable) configuration
        once the provider is known, so it never changes; at most ``_RESOLVED_MAX`` entries. The stack is
        still asked of ``registry.provider`` per request (a ``register`` there replaces it)."""

    def _config_budgets(self) -> tuple[Budget, ...]:
        budgets = self.config.budgets
        if budgets is None:
            return ()
        return tuple(
            Budget(scope, max_cost=b.max_cost, max_tokens=b.max_tokens, period=b.period, currency=b.currency)
            for scope, b in budgets.budgets.items()
        )

    # --- who is calling ---

    async def caller(self, request: web.Request) -> Caller:
        if self.auth.open and not self.settings.allow_public_without_keys and not is_loopback(request.remote):
            raise GatewayRefusal(
                403, "this gateway has no keys, so it serves loopback clients only", code="gateway_open_loopback_only"
            )
        caller = await self.auth.authenticate(secret_of(request))
        if caller is None:
            raise GatewayRefusal(
                401,
                "missing or invalid gateway key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'",
                code="invalid_api_key",
            )
        return caller

    # --- reading the body ---

    async def body(self, request: web.Request) -> Any:
        limit = self.settings.max_body_bytes
        length = request.content_length  # parsed from the header on each access
        if length is not None and length > limit:
            raise _too_large(length, limit)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None, limit) from None
        if len(raw) > limit:
            raise _too_large(len(raw), limit)
        try:
            body = json.loads(raw)
        except UnicodeDecodeError:
            raise bad_request(None, "the body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise bad_request(
                None, f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        except RecursionError:
            raise bad_request(None, "the body is nested too deeply") from None
        if isinstance(body, dict):
            messages = body.get("messages")
            if isinstance(messages, list) and len(messages) > self.settings.max_messages:
                raise bad_request(
                    "messages", f"{len(messages)} messages; this gateway accepts at most {self.settings.max_messages}"
                )
        return body

    # --- which model ---

    def resolve(self, caller: Caller, name: str) -> tuple[ModelRef, Provider]:
        """The stack for the model string ``name`` as the caller sent it."""
        expose = self.settings.expose
        if expose and name not in expose:
            raise _not_found(name)
        if not caller.allows(name):
            raise GatewayRefusal(403, f"this gateway key may not use the model {name!r}", code="model_not_allowed")
        ref = self._resolved.get(name)
        if ref is None:
            try:
                ref = self.registry.resolve(name)
            except ConfigError:
                raise _not_found(name) from None
            if len(self._resolved) >= _RESOLVED_MAX:
                self._resolved.clear()  # model strings come from clients: a bound, not an LRU
            self._resolved[name] = ref
        return ref, self.registry.provider(ref)

    def stack(
        self,
        caller: Caller,
        name: str,
        fallbacks: Sequence[str],
        served: Served | None = None,
        on_row: Callable[[LedgerRow], None] | None = None,
    ) -> Provider:
        """The per-request stack: the model (and the request's own fallbacks), the key's limits, the meter
        (whose ledger row names ``served``'s route and the status the client was sent, and is handed to
        ``on_row`` as it is written)."""
        ref, stack = self.resolve(caller, name)
        if fallbacks:
            candidates: list[tuple[Provider, str | None]] = [(stack, ref.model)]
            for i, member in enumerate(fallbacks):
                try:
                    member_ref, member_stack = self.resolve(caller, member)
                except GatewayRefusal as refusal:
                    raise GatewayRefusal(
                        refusal.status, refusal.message, code=refusal.code, param=f"fallbacks[{i}]"
                    ) from None
                except ModelNotFoundError as exc:
                    raise bad_request(f"fallbacks[{i}]", exc.message) from None
                candidates.append((member_stack, member_ref.model))
            stack = Fallback(candidates, name=name)
        if caller.requests_per_minute is not None or caller.tokens_per_minute is not None:
            stack = RateLimited(
                stack,
                requests_per_minute=caller.requests_per_minute,
                tokens_per_minute=caller.tokens_per_minute,
                backend=self.limit_backend,
                scope=f"key:{caller.name}",
                on_limit="fail",
            )
        budgets = self.budgets
        if caller.name is not None and (caller.max_cost is not None or caller.max_tokens is not None):
            budgets = (
                *budgets,
                Budget(
                    f"key:{caller.name}",
                    max_cost=caller.max_cost,
                    max_tokens=caller.max_tokens,
                    period=caller.budget_period,
                ),
            )
        route, status_of = (served.route, served.status_of) if served is not None else (None, None)
        return Metered(
            stack,
            ledger=self.ledger,
            key=caller.name,
            budgets=budgets,
            overrides=self.prices,
            route=route,
            status_of=status_of,
            on_row=on_row,
            writes=self.writes,
        )


_RESOLVED_MAX = 1024


def _too_large(size: int | None, limit: int) -> GatewayRefusal:
    what = f"{size} bytes" if size is not None else "the body"
    return GatewayRefusal(
        413, f"{what} is more than this gateway's limit of {limit} bytes (max_body_bytes)", code="request_too_large"
    )


def _not_found(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"the model {name!r} is not served by this gateway (GET /v1/models lists what is)",
        status=404,
        code="model_not_found",
    )


def _fallbacks(body: Any) -> tuple[str, ...]:
    """Take the request's own ``"fallbacks": ["model", ...]`` out of ``body`` (the decoders don't know it)."""
    if not isinstance(body, dict) or "fallbacks" not in body:
        return ()
    value = body.pop("fallbacks")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad_request("fallbacks", "expected an array of model strings")
    if len(value) > MAX_FALLBACKS:
        raise bad_request("fallbacks", f"at most {MAX_FALLBACKS} models, got {len(value)}")
    return tuple(v.strip() for v in value)


def json_reply(reply: ErrorReply) -> web.Response:
    return web.json_response(dict(reply.body), status=reply.status, headers=dict(reply.headers))


class ErrorSpeaker(Protocol):
    """What ``guard`` needs of a dialect (a ``ServedDialect`` has both): how it spells an ``LlmError`` and
    a refusal of the gateway's own."""

    def encode_error(self, error: LlmError) -> ErrorReply: ...

    def error_reply(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> ErrorReply: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard(errors: ErrorSpeaker, handler: Handler) -> Handler:
    """``handler`` with what it raises answered in ``errors``' dialect (see the module docstring).
    aiohttp's own ``HTTPException``s and cancellation pass through."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayRefusal as refusal:
            reply = errors.error_reply(refusal.status, refusal.message, param=refusal.param, code=refusal.code)
        except LlmError as error:
            reply = errors.encode_error(error)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("gateway error on %s %s", request.method, request.path)
            reply = errors.error_reply(500, INTERNAL_ERROR)
        return json_reply(reply)

    return guarded


_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}


class _Outcome:
    """What the record of one request is built from, filled in as it goes."""

    __slots__ = (
        "attempts",
        "cost",
        "currency",
        "error",
        "fault",
        "model",
        "provider",
        "requested",
        "status",
        "ttft",
        "usage",
    )

    def __init__(self) -> None:
        self.status = 500
        self.requested: str | None = None
        self.provider: str | None = None
        self.model: str | None = None
        self.attempts = 0
        self.usage: Usage | None = None
        self.ttft: float | None = None
        self.error: str | None = None
        self.fault: Fault | None = None
        self.cost: Decimal | None = None
        self.currency = "USD"

    def priced(self, row: LedgerRow) -> None:
        """The meter's ``on_row``: the cost its ledger row was priced at (the same ``cost_of``)."""
        self.cost, self.currency = row.cost, row.currency

    def failed(self, error: LlmError, status: int) -> None:
        self.status = status
        self.error = error.kind
        self.fault = _FAULT_OF_CATEGORY.get(answer_for(error).category, "gateway")
        attempts = getattr(error, "attempts", ())
        if attempts:
            self.provider, self.model, self.attempts = attempts[-1].provider, attempts[-1].model, len(attempts)
        elif error.provider:
            self.provider = error.provider


async def relay(gw: Gateway, request: web.Request, served: Served) -> web.StreamResponse:
    """Answer one model request on ``served``'s route (see the module docstring)."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    gw.metrics.request_started(served.route)
    out = _Outcome()
    caller: Caller | None = None
    stream = False
    dialect = served.dialect
    try:
        try:
            caller = await gw.caller(request)
            body = await gw.body(request)
            fallbacks = _fallbacks(body)
            decoded = dialect.decode_request(body)
            out.requested = decoded.model
            stream = decoded.stream if served.stream is None else served.stream
            provider = gw.stack(caller, decoded.model, fallbacks, served, out.priced)
            if served.needs_tools and not provider.capabilities().tools:
                raise bad_request(
                    "model", f"the model {decoded.model!r} cannot call tools, so /api/agent cannot serve it"
                )
            if stream:
                chat = _taking_chunks(decoded.request, dialect.text_chunks)
                return await _stream(gw, request, served, chat, decoded, provider, out, started)
            response = await provider.chat(decoded.request)
        except GatewayRefusal as refusal:
            out.status, out.error, out.fault = refusal.status, "refused", refusal.fault
            return json_reply(
                dialect.error_reply(refusal.status, refusal.message, param=refusal.param, code=refusal.code)
            )
        except LlmError as error:
            reply = dialect.encode_error(error)
            out.failed(error, reply.status)
            return json_reply(reply)
        out.status, out.provider, out.model = 200, response.provider, response.model
        out.attempts, out.usage = len(response.attempts), response.usage
        model = answered_model(response.provider, response.model, decoded.model)
        payload = dialect.encode_response(response, model=model, created=int(gw.clock()))
        return web.json_response(payload)
    except asyncio.CancelledError:
        out.status, out.error, out.fault = 499, "cancelled", "caller"
        raise
    except Exception:
        log.exception("gateway error on %s", served.route)
        out.status, out.error, out.fault = 500, "gateway_error", "gateway"
        return json_reply(dialect.error_reply(500, INTERNAL_ERROR))
    finally:
        gw.metrics.request_finished(
            RequestRecord(
                route=served.route,
                dialect=dialect.name,
                status=out.status,
                started=started_at,
                latency_s=time.perf_counter() - started,
                stream=stream,
                key_name=caller.name if caller is not None else None,
                requested_model=out.requested,
                provider=out.provider,
                model=out.model,
                attempts=out.attempts,
                usage=out.usage,
                cost=out.cost,
                currency=out.currency,
                ttft_s=out.ttft,
                error_kind=out.error,
                fault=out.fault,
            )
        )


async def _stream(
    gw: Gateway,
    request: web.Request,
    served: Served,
    chat: ChatRequest,
    decoded: DecodedRequest,
    provider: Provider,
    out: _Outcome,
    started: float,
) -> web.StreamResponse:
    """A streamed answer: an error status until the commit point, the dialect's error event after it."""
    upstream = provider.chat_stream(chat)
    try:
        await upstream.__aenter__()
        first = await upstream.first_batch()
        if first and type(first[0]) is Done and first[0].error is not None:
            raise first[0].error
    except BaseException:
        await upstream.aclose()
        raise
    try:
        encoder = served.dialect.stream_encoder(
            model=answered_model(upstream.provider, upstream.model, decoded.model),
            created=int(gw.clock()),
            include_usage=decoded.include_usage,
        )
        response = web.StreamResponse(status=200, headers=_SSE_HEADERS)
        await response.prepare(request)
        out.status, out.provider, out.model = 200, upstream.provider, upstream.model
        try:
            while not encoder.finished:
                batch = await upstream.read()
                if not batch:
                    break
                data = encoder.encode_batch(batch)
                last = batch[-1]
                if type(last) is Done:
                    out.usage = last.usage
                    if last.error is not None:
                        out.error, out.fault = last.error.kind, _fault_of(last.error)
                if data:
                    if out.ttft is None:
                        out.ttft = time.perf_counter() - started
                    await response.write(data)
        except LlmError as error:
            out.error, out.fault = error.kind, _fault_of(error)
            await response.write(encoder.fail(error))
        except ConnectionError:  # the client went away: closing the upstream (below) is all there is to do
            out.status, out.error, out.fault = 499, "cancelled", "caller"
            return response
        except asyncio.CancelledError:
            out.status, out.error, out.fault = 499, "cancelled", "caller"
            raise
        except Exception:
            log.exception("gateway error while streaming %s", served.route)
            out.error, out.fault = "gateway_error", "gateway"
            await response.write(encoder.fail(ProviderError("internal gateway error while streaming")))
        if not encoder.finished:
            # The upstream ended without its Done: never a clean end after partial output.
            await response.write(encoder.fail(ProviderError("the upstream stream ended before it finished")))
        out.provider, out.model, out.attempts = upstream.provider, upstream.model, len(upstream.attempts)
        await response.write_eof()
        return response
    finally:
        await upstream.aclose()


def _taking_chunks(chat: ChatRequest, dialect: str | None) -> ChatRequest:
    """``chat`` asking an upstream of ``dialect`` for its text chunks as ``TextChunks`` (which the served
    encoder re-frames without decoding each chunk); unchanged when the served dialect takes none."""
    if dialect is None:
        return chat
    options = {**chat.provider_options, TEXT_CHUNKS_OPTION: {"text_chunks": dialect}}
    return dataclasses.replace(chat, provider_options=options)


def _fault_of(error: LlmError) -> Fault:
    return _FAULT_OF_CATEGORY.get(answer_for(error).category, "gateway")
