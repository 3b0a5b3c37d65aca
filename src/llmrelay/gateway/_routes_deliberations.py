"""``POST /api/deliberations``: a deliberation (``llmrelay.deliberation``) streamed as server-sent events,
and ``GET /api/deliberations/{id}/transcript`` for the finished ones.

The request body (JSON; every field but ``question`` and ``participants`` optional, ``participants``
optional too when ``name`` names a ``[deliberations.NAME]`` table, whose fields the body's override)::

    {"question": "Is 1001 prime?",
     "participants": [{"name": "skeptic", "model": "an/claude-haiku-4-5", "persona": "...", "max_tokens": 200},
                      "builder=oa/gpt-4o-mini",                                    # NAME=MODEL, as in llmrelay.toml
                      {"name": "safe", "models": ["oa/gpt-4o-mini", "ol/llama3.2"]}],   # its own fallback chain
     "strategy": "debate" | "rounds" | "council",  "rounds": 2,  "mode": "parallel" | "sequential",
     "chair": "oa/gpt-4o" | {"name": "judge", "model": "..."} | null,
     "aggregate": "vote" | "synthesis",  "agreement": 1.0 | false,  "max_tokens": 300,  "temperature": 0.7,
     "limits": {"max_tokens": 20000, "max_cost": "0.05", "max_calls": 12, "deadline": 120},
     "name": "review" | null}

Every model (participants, their chains, the chair) is resolved as the other routes resolve one
(``Gateway.stack``: ``[gateway] expose``, the key's ``allows`` -> 403, unknown -> 404), under the key's
rate limits and budgets, each turn metered as one ledger row with ``route="/api/deliberations"``. Bad
input (an unknown field, a wrong type, a strategy that needs a chair and has none, more than
``MAX_PARTICIPANTS``) is answered ``4xx`` with ``{"error": {"type", "message", "param", ...}}`` before
any model is called.

The answer is ``text/event-stream``, one event per deliberation event::

    event: deliberation
    data: {"type": "deliberation", "id": "dlb_...", "transcript": "/api/deliberations/dlb_.../transcript",
           "question": ..., "strategy": ..., "mode": ...,
           "seats": [{"type": "seat", "name", "role", "models", "persona"}]}

    event: round_started
    data: {"type": "round_started", "round": 1, "phase": "draft"}

    event: turn_delta
    data: {"type": "turn_delta", "participant": "skeptic", "round": 1, "text": "...", "attempt": 1}
    ...
    event: deliberation_done
    data: {"type": "deliberation_done", "stop": "completed", "totals": {...}, ...}

Why a ``deliberation`` event first (and not a response header alone): an ``EventSource``-style client
sees only events, so the id it needs for the transcript arrives the same way as everything else; the id
is also sent as the ``x-llmrelay-deliberation`` header. Each ``data`` is the event in the tagged JSON
codec (``llmrelay._codec.to_json``), with errors' ``body_excerpt`` left out. The stream ends after the
``deliberation_done`` event. A failure of the gateway itself after the stream began (a bug) ends it with
``event: error`` / ``{"type": "error", "error": {"type": "internal", "message": ...}}`` instead: never a
clean end without ``deliberation_done``.

A client that disconnects cancels the handler (``handler_cancellation``), which leaves the run's
``async with``: every turn in flight is cancelled and its upstream connection closed at once; nothing is
stored for it.

``GET /api/deliberations/{id}/transcript?format=json|md`` (default ``json``): the transcript of a
finished deliberation (``Transcript.to_json()``: tagged, reloadable with ``Transcript.from_json``; or
its Markdown as ``text/markdown``). The gateway keeps the last ``KEEP_TRANSCRIPTS`` in memory (per
process, least recently used evicted); only the key that ran it, or the admin, may read one (others get
the same 404 as an unknown id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from .._codec import json_line, to_json
from .._errors import LlmError, redact
from .._provider import ChatStream, Provider
from .._types import ChatRequest, ChatResponse, Usage
from ..config import ConfigError, DeliberationConfig, ParticipantConfig
from ..config._deliberations import DeliberationLimitsConfig
from ..deliberation import (
    Deliberation,
    DeliberationDone,
    Participant,
    Transcript,
    deliberate,
    from_config,
    merge_config,
)
from ..registry import price_overrides
from ..wire.serve import ErrorReply
from ..wire.serve_errors import ErrorAnswer, answer_for, answer_for_status, retry_headers
from ._hooks import Caller, RequestRecord
from ._relay import Gateway, GatewayRefusal, Served, guard, json_reply

__all__ = [
    "CONSOLE_ERRORS",
    "KEEP_TRANSCRIPTS",
    "MAX_PARTICIPANTS",
    "ConsoleErrors",
    "MAX_ROUNDS",
    "TranscriptStore",
    "add_deliberation_routes",
    "api_error",
    "is_admin",
]

log = logging.getLogger("llmrelay.gateway")

ROUTE = "/api/deliberations"
KEEP_TRANSCRIPTS = 50
"""Finished transcripts kept in memory for ``GET .../transcript`` (the least recently used go first)."""
MAX_PARTICIPANTS = 16
MAX_ROUNDS = 20
MAX_CHAIN = 8
"""The most models one participant's own fallback chain may name."""

_FIELDS = frozenset(
    {
        "question",
        "participants",
        "strategy",
        "rounds",
        "mode",
        "chair",
        "aggregate",
        "agreement",
        "max_tokens",
        "temperature",
        "limits",
        "name",
    }
)
_PARTICIPANT_FIELDS = frozenset({"name", "model", "models", "persona", "max_tokens"})
_LIMIT_FIELDS = frozenset({"max_tokens", "max_cost", "max_calls", "deadline"})
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}


# --- shared by the console routes ----------------------------------------------------------------------


class ConsoleErrors:
    """The console routes' error shape, ``{"error": {"type": CATEGORY, "message", "param", "code"}}``
    (``param`` and ``code`` always present, ``null`` when none), as an ``ErrorSpeaker`` for ``guard``."""

    @staticmethod
    def _reply(answer: ErrorAnswer) -> ErrorReply:
        error = {"type": answer.category, "message": answer.message, "param": answer.param, "code": answer.code}
        return ErrorReply(answer.status, {"error": error}, retry_headers(answer))

    def encode_error(self, error: LlmError) -> ErrorReply:
        return self._reply(answer_for(error))

    def error_reply(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> ErrorReply:
        return self._reply(answer_for_status(status, message, param=param, code=code))


CONSOLE_ERRORS = ConsoleErrors()


def api_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    """``status`` with the console routes' error body (``ConsoleErrors``)."""
    return json_reply(CONSOLE_ERRORS.error_reply(status, message, param=param, code=code))


def refusal_reply(refusal: GatewayRefusal) -> web.Response:
    return api_error(refusal.status, refusal.message, param=refusal.param, code=refusal.code)


def is_admin(gw: Gateway, caller: Caller) -> bool:
    """The ``[gateway] api_key_env`` key, or the anonymous caller of a gateway without keys (loopback)."""
    from ._relay import StaticKey

    return caller.anonymous or caller.key_id == StaticKey.ADMIN.key_id


class _Bad(Exception):
    """Bad input, answered 400 (or ``status``) naming ``param``."""

    def __init__(self, param: str | None, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status


# --- the transcripts kept ------------------------------------------------------------------------------


class TranscriptStore:
    """The last ``capacity`` finished transcripts, with the key that ran each (an in-memory LRU)."""

    def __init__(self, capacity: int = KEEP_TRANSCRIPTS) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str | None, Transcript]] = OrderedDict()

    def put(self, ident: str, owner: str | None, transcript: Transcript) -> None:
        self._items[ident] = (owner, transcript)
        self._items.move_to_end(ident)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, ident: str) -> tuple[str | None, Transcript] | None:
        item = self._items.get(ident)
        if item is not None:
            self._items.move_to_end(ident)
        return item

    def __len__(self) -> int:
        return len(self._items)


TRANSCRIPTS_KEY: web.AppKey[TranscriptStore] = web.AppKey("llmrelay_transcripts", TranscriptStore)


# --- reading the body ----------------------------------------------------------------------------------


def _text(value: Any, param: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise _Bad(param, "expected a non-empty string")
    return value.strip()


def _opt_int(body: Mapping[str, Any], field: str, prefix: str, *, minimum: int = 1, maximum: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _Bad(f"{prefix}{field}", f"expected an integer from {minimum} to {maximum}, got {value!r}")
    return value


def _opt_number(body: Mapping[str, Any], field: str, prefix: str = "") -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _Bad(f"{prefix}{field}", f"expected a positive number, got {value!r}")
    return float(value)


def _unknown(body: Mapping[str, Any], known: frozenset[str], prefix: str) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise _Bad(f"{prefix}{extra[0]}", f"unknown field {extra[0]!r}; expected: {', '.join(sorted(known))}")


def _models(entry: Mapping[str, Any], param: str) -> tuple[str, ...]:
    if "model" in entry and "models" in entry:
        raise _Bad(f"{param}.models", "give either model (one model string) or models (a chain), not both")
    if "model" in entry:
        return (_text(entry["model"], f"{param}.model"),)
    chain = entry.get("models")
    if not isinstance(chain, list) or not chain:
        raise _Bad(f"{param}.model", "required: a model string (model) or a non-empty list of them (models)")
    if len(chain) > MAX_CHAIN:
        raise _Bad(f"{param}.models", f"at most {MAX_CHAIN} models, got {len(chain)}")
    return tuple(_text(m, f"{param}.models[{i}]") for i, m in enumerate(chain))


def _participant(entry: Any, param: str, *, default_name: str | None = None) -> ParticipantConfig:
    if isinstance(entry, str):  # "NAME=MODEL" as in the configuration; a bare model string for the chair
        label, sep, target = entry.partition("=")
        if sep:
            return ParticipantConfig(_text(label, param), (_text(target, param),))
        if default_name is not None:
            return ParticipantConfig(default_name, (_text(entry, param),))
        raise _Bad(param, f'expected {{"name": ..., "model": ...}} or "NAME=MODEL", got {entry!r}')
    if not isinstance(entry, dict):
        raise _Bad(param, 'expected an object {"name": ..., "model": ...}')
    _unknown(entry, _PARTICIPANT_FIELDS, f"{param}.")
    name = entry.get("name", default_name)
    persona = entry.get("persona")
    if persona is not None and not isinstance(persona, str):
        raise _Bad(f"{param}.persona", "expected a string")
    return ParticipantConfig(
        name=_text(name, f"{param}.name"),
        models=_models(entry, param),
        persona=persona or None,
        max_tokens=_opt_int(entry, "max_tokens", f"{param}.", maximum=1_000_000),
    )


def _choice(body: Mapping[str, Any], field: str, choices: tuple[str, ...]) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if value not in choices:
        raise _Bad(field, f"expected one of {', '.join(choices)}; got {value!r}")
    return value


def _limits(raw: Any) -> DeliberationLimitsConfig:
    if raw is None:
        return DeliberationLimitsConfig()
    if not isinstance(raw, dict):
        raise _Bad("limits", "expected an object {max_tokens, max_cost, max_calls, deadline}")
    _unknown(raw, _LIMIT_FIELDS, "limits.")
    cost: Decimal | None = None
    if raw.get("max_cost") is not None:
        value = raw["max_cost"]
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise InvalidOperation
            cost = Decimal(str(value))
        except InvalidOperation:
            raise _Bad("limits.max_cost", f'expected a decimal amount like "0.05", got {value!r}') from None
        if not cost.is_finite():
            raise _Bad("limits.max_cost", f'expected a decimal amount like "0.05", got {value!r}')
    return DeliberationLimitsConfig(
        max_tokens=_opt_int(raw, "max_tokens", "limits.", maximum=100_000_000),
        max_cost=cost,
        max_calls=_opt_int(raw, "max_calls", "limits.", maximum=10_000),
        deadline=_opt_number(raw, "deadline", "limits."),
    )


def read_request(body: Any, gw: Gateway) -> tuple[str, DeliberationConfig, str | None]:
    """The question, the deliberation's settings (a named table merged with the body) and the name."""
    if not isinstance(body, dict):
        raise _Bad(None, "expected a JSON object with a question and participants")
    _unknown(body, _FIELDS, "")
    question = _text(body.get("question"), "question")
    name = body.get("name")
    if name is not None:
        name = _text(name, "name")
        if name not in gw.config.deliberations:
            known = ", ".join(gw.config.deliberations) or "none"
            raise _Bad("name", f"no [deliberations.{name}] is configured on this gateway; configured: {known}", 404)
    raw_people = body.get("participants")
    people: tuple[ParticipantConfig, ...] = ()
    if raw_people is not None:
        if not isinstance(raw_people, list):
            raise _Bad("participants", "expected a list of {name, model} objects")
        if len(raw_people) > MAX_PARTICIPANTS:
            raise _Bad("participants", f"at most {MAX_PARTICIPANTS} participants, got {len(raw_people)}")
        people = tuple(_participant(p, f"participants[{i}]") for i, p in enumerate(raw_people))
    if not people and name is None:
        raise _Bad("participants", "at least one participant is required (or name a configured deliberation)")
    chair = body.get("chair")
    agreement = body.get("agreement")
    if agreement is not None and agreement is not False:
        if isinstance(agreement, bool) or not isinstance(agreement, int | float) or not 0 < agreement <= 1:
            raise _Bad("agreement", f"expected a share in (0, 1] or false, got {agreement!r}")
        agreement = float(agreement)
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, int | float)):
        raise _Bad("temperature", f"expected a number, got {temperature!r}")
    override = DeliberationConfig(
        participants=people,
        strategy=_choice(body, "strategy", ("rounds", "debate", "council")),
        mode=_choice(body, "mode", ("parallel", "sequential")),
        rounds=_opt_int(body, "rounds", "", maximum=MAX_ROUNDS),
        chair=_participant(chair, "chair", default_name="chair") if chair is not None else None,
        aggregate=_choice(body, "aggregate", ("vote", "synthesis")),
        agreement=agreement,
        max_tokens=_opt_int(body, "max_tokens", "", maximum=1_000_000),
        temperature=None if temperature is None else float(temperature),
        limits=_limits(body.get("limits")),
    )
    merged = merge_config(gw.config.deliberations[name], override) if name is not None else override
    return question, merged, name


# --- models: through the gateway's own per-request stacks ---------------------------------------------


class _Named(Provider):
    """A per-request stack under the model string the client sent, so seats and turns name that string
    (``model_label`` of a provider with no ``model`` is its ``name``); everything else passes through.
    Never closes what it wraps (the registry's shared stacks are below it)."""

    def __init__(self, label: str, inner: Provider) -> None:
        self.name = label
        self.model = None
        self.inner = inner

    def capabilities(self) -> Any:
        return self.inner.capabilities()

    def profile(self) -> Any:
        return self.inner.profile()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.inner.chat(request)

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        return self.inner.chat_stream(request)

    async def aclose(self) -> None:
        return None


def _bind(gw: Gateway, caller: Caller, person: Participant, param: str, served: Served) -> Participant:
    chain: list[Provider] = []
    for i, model in enumerate(person.models):
        where = param if len(person.models) == 1 else f"{param}.models[{i}]"
        if not isinstance(model, str):  # pragma: no cover - the body gives model strings only
            raise _Bad(where, "expected a model string")
        try:
            chain.append(_Named(model, gw.stack(caller, model, (), served)))
        except GatewayRefusal as refusal:
            raise _Bad(where, refusal.message, refusal.status) from None
        except LlmError as error:  # an unknown model or provider
            if "missing_api_key" in error.family:
                raise  # the gateway's configuration, not the caller's input: answered 503 (``answer_for``)
            status = error.status if isinstance(error.status, int) and 400 <= error.status < 500 else 404
            raise _Bad(where, error.message, status) from None
    return replace(person, model=chain[0] if len(chain) == 1 else tuple(chain))


def build_spec(gw: Gateway, caller: Caller, body: Any, served: Served) -> Deliberation:
    """The ``Deliberation`` the body asks for, its models bound to the caller's stacks; ``_Bad`` when
    the body is wrong (nothing has been called yet)."""
    question, settings, name = read_request(body, gw)
    try:
        spec = from_config(question, settings, prices=price_overrides(gw.config), name=name)
    except ConfigError as exc:
        message = exc.message.removeprefix("deliberation: ")
        raise _Bad(exc.key if exc.key and exc.key != "deliberation" else None, message) from None
    people = [_bind(gw, caller, p, f"participants[{i}].model", served) for i, p in enumerate(spec.participants)]
    chair = _bind(gw, caller, spec.chair, "chair.model", served) if spec.chair is not None else None
    return replace(spec, participants=people, chair=chair)


# --- the stream ----------------------------------------------------------------------------------------


def _scrubbed(value: Any) -> Any:
    """The JSON of an event with every error's ``body_excerpt`` left out and its message redacted."""
    if isinstance(value, dict):
        out = {k: _scrubbed(v) for k, v in value.items()}
        if out.get("type") == "error":
            out.pop("body_excerpt", None)
            if isinstance(out.get("message"), str):
                out["message"] = redact(out["message"])
        return out
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def sse(kind: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: KIND`` and one ``data:`` line of JSON."""
    return f"event: {kind}\ndata: {json_line(data)}\n\n".encode()


def _usage_of(done: DeliberationDone | None) -> Usage | None:
    if done is None:
        return None
    t = done.totals
    return Usage(input_tokens=t.input_tokens, output_tokens=t.output_tokens, total_tokens=t.total_tokens)


async def _post(gw: Gateway, store: TranscriptStore, request: web.Request, served: Served) -> web.StreamResponse:
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    gw.metrics.request_started(ROUTE)
    status, error_kind, caller, done = 500, None, None, None
    ttft: float | None = None
    try:
        try:
            caller = await gw.caller(request)
            body = await gw.body(request)
            spec = build_spec(gw, caller, body, served)
        except GatewayRefusal as refusal:
            status, error_kind = refusal.status, "refused"
            return refusal_reply(refusal)
        except _Bad as bad:
            status, error_kind = bad.status, "invalid_request"
            return api_error(bad.status, bad.message, param=bad.param)
        except LlmError as error:  # a body that is not JSON, a provider with no key, ...
            reply = CONSOLE_ERRORS.encode_error(error)
            status, error_kind = reply.status, error.kind
            return json_reply(reply)
        ident = "dlb_" + secrets.token_hex(8)
        response = web.StreamResponse(status=200, headers={**_SSE_HEADERS, "x-llmrelay-deliberation": ident})
        await response.prepare(request)
        status = 200
        try:
            async with deliberate(spec) as run:
                opening = {
                    "type": "deliberation",
                    "id": ident,
                    "transcript": f"{ROUTE}/{ident}/transcript",
                    "question": spec.question,
                    "strategy": spec.strategy,
                    "mode": spec.mode,
                    "seats": [to_json(seat) for seat in run.seats],
                }
                await response.write(sse("deliberation", opening))
                async for event in run:
                    data = _scrubbed(to_json(event))
                    if ttft is None and data.get("type") == "turn_delta":
                        ttft = time.perf_counter() - started
                    await response.write(sse(str(data.get("type")), data))
                    if type(event) is DeliberationDone:
                        done = event
                store.put(ident, caller.name, run.transcript)
        except ConnectionError:  # the client went away while we wrote: the run is closed above
            status, error_kind = 499, "cancelled"
            return response
        except Exception:
            log.exception("gateway error while streaming a deliberation")
            error_kind = "gateway_error"
            failure = {"type": "internal", "message": "internal gateway error (the gateway's log has the details)"}
            await response.write(sse("error", {"type": "error", "error": failure}))
        await response.write_eof()
        return response
    except asyncio.CancelledError:
        status, error_kind = 499, "cancelled"
        raise
    finally:
        gw.metrics.request_finished(
            RequestRecord(
                route=ROUTE,
                dialect="native",
                status=status,
                started=started_at,
                latency_s=time.perf_counter() - started,
                stream=True,
                key_name=caller.name if caller is not None else None,
                usage=_usage_of(done),
                cost=done.totals.cost if done is not None else None,
                ttft_s=ttft,
                error_kind=error_kind,
                fault=None if error_kind is None else "caller" if status < 500 else "gateway",
            )
        )


async def _transcript(gw: Gateway, store: TranscriptStore, request: web.Request) -> web.StreamResponse:
    try:
        caller = await gw.caller(request)
    except GatewayRefusal as refusal:
        return refusal_reply(refusal)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "md"):
        return api_error(400, f"format must be json or md, got {fmt!r}", param="format")
    ident = request.match_info["id"]
    found = store.get(ident)
    if found is None or (found[0] != caller.name and not is_admin(gw, caller)):
        return api_error(
            404,
            f"no finished deliberation {ident!r} here: this gateway keeps the last {store.capacity} "
            "(per worker process), and only while it runs",
            code="deliberation_not_found",
        )
    transcript = found[1]
    if fmt == "md":
        return web.Response(text=transcript.to_markdown(), content_type="text/markdown", charset="utf-8")
    return web.json_response(_scrubbed(transcript.to_json()), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def add_deliberation_routes(app: web.Application, gw: Gateway, *, keep: int = KEEP_TRANSCRIPTS) -> None:
    """``POST /api/deliberations`` and ``GET /api/deliberations/{id}/transcript`` (module docstring)."""
    from ._routes_native import NativeDialect

    store = TranscriptStore(keep)
    app[TRANSCRIPTS_KEY] = store
    served = Served(ROUTE, NativeDialect(), stream=True)

    async def post(request: web.Request) -> web.StreamResponse:
        return await _post(gw, store, request, served)

    async def transcript(request: web.Request) -> web.StreamResponse:
        return await _transcript(gw, store, request)

    app.router.add_post(ROUTE, guard(CONSOLE_ERRORS, post))
    app.router.add_get(ROUTE + "/{id}/transcript", guard(CONSOLE_ERRORS, transcript))
