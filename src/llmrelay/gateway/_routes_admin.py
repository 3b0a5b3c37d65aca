"""The console's JSON routes: usage from the ledger, provider health, gateway keys, and who is calling.

Who sees what: any valid key sees its own usage; the admin caller (the ``[gateway] api_key_env`` key)
and the anonymous caller of a gateway without keys (loopback only) see everything. Key management is
admin only (403 otherwise); a missing or wrong key is 401. Errors are
``{"error": {"type": CATEGORY, "message": ..., "param": ... | null, "code": ... | null}}``.

``GET /api/whoami``::

    {"name": "team-a" | null, "admin": false, "anonymous": false, "models": ["oa/*"] | null}

``GET /api/usage?by=model|provider|key|day|hour&since=ISO8601[&key=NAME]`` (``by`` defaults to
``model``; ``since`` to 24 hours ago; ``key`` filters, admin only; a non-admin key always sees its own
rows). At most ``MAX_USAGE_ROWS`` rows are read (the most recent ones), and ``truncated`` says when
there were more::

    {"by": "model", "since": "2025-01-01T00:00:00+00:00", "truncated": false, "row_limit": 100000,
     "groups": [GROUP, ...],                # busiest first; by day/hour: in time order
     "totals": GROUP}                      # the same fields over every row read, "group": "total"
    GROUP = {"group": "oa/gpt-4o-mini", "requests": 3, "ok": 2, "errors": 1, "cancelled": 0,
             "input_tokens": 30, "output_tokens": 15, "cache_read_tokens": 0, "cache_write_tokens": 0,
             "reasoning_tokens": 0,
             "cost": {"USD": "0.000012"},    # exact decimal strings per currency, priced rows only
             "unpriced": 1,                  # rows whose cost is unknown: never counted as 0
             "error_kinds": {"auth": 1},
             "latency_ms": {"p50": 12, "p95": 40, "p99": 40},
             "ttft_ms": {"p50": 5, "p95": 9, "p99": 9} | null}     # streams only; null: none

Groups are named: ``model`` ``PROVIDER/MODEL`` (the model that answered; ``PROVIDER`` alone when
unknown), ``provider``, ``key`` (``(anonymous)`` for rows without a key), ``day`` ``YYYY-MM-DD`` and
``hour`` ``YYYY-MM-DDTHH:00Z`` (UTC). Percentiles are nearest-rank over the rows' ``elapsed_ms`` /
``ttft_ms``.

``GET /api/providers``::

    {"providers": [ROW, ...], "rate_limits": [RATE_LIMIT, ...]}
    ROW = {"name": "oa", "kind": "provider" | "deployment", "router": null | "pool",
           "state": "closed" | "open" | "half_open" | null, "error_ratio": 0.0 | null,
           "latency_ms": 120.5 | null, "in_flight": 0 | null, "rate_limit": RATE_LIMIT | null}
    RATE_LIMIT = {"scope": "oa", "backend": "memory" | "redis", "requests_left": 59.0 | null,
                  "tokens_left": null, "slots_left": null}

One ``provider`` row per configured provider (health fields ``null``: a provider has no breaker of its
own) and one ``deployment`` row per deployment of each ``[routers]`` entry, from ``Router.health()``
(the router's stack is built from the registry on first use, the same one requests go through, so its
breakers are the live ones; ``latency_ms`` is the EWMA of time to first event). ``rate_limit`` is the
headroom of the ``[rate_limits]`` scope that applies (a provider: its own scope; a deployment: the
outermost limit around it): the bucket levels now for the in-process backend, ``null`` levels for Redis
(reading them would cost a round trip per bucket; the scope is still named). ``rate_limits`` lists every
configured scope.

``GET /api/keys`` -> ``{"keys": [KEY, ...]}`` (revoked ones included, never a secret);
``POST /api/keys`` ``{"name", "models": [...] | null, "rpm", "tpm", "max_cost", "max_tokens", "period"}`` ->
201 ``{"key": KEY, "secret": "llmr_..."}`` (the secret is shown this once; 409 when an active key has
that name); ``DELETE /api/keys/{name}`` -> 200 ``{"key": KEY}`` or 404. Without a key store (a gateway
built with its own ``Authenticator``): 501.
``KEY = {"id", "name", "prefix", "created", "models", "rpm", "tpm", "max_cost": "5" | null,
"max_tokens", "period", "revoked": ISO8601 | null, "active"}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from .._errors import LlmError
from .._provider import Provider
from .._types import ChatRequest, Message
from ..config import ConfigError
from ..limits import MemoryBackend
from ..metering import LedgerRow
from ..metering._model import totals_of, utc
from ..wrappers.ratelimit import RateLimited
from ..wrappers.router import Router
from ._hooks import Caller
from ._relay import Gateway, GatewayRefusal, guard
from ._routes_deliberations import CONSOLE_ERRORS, is_admin

__all__ = ["MAX_USAGE_ROWS", "add_admin_routes", "key_json", "usage_groups"]

MAX_USAGE_ROWS = 100_000
"""The most ledger rows one ``GET /api/usage`` reads (the most recent ones)."""
_BY = ("model", "provider", "key", "day", "hour")
_DEPTH = 16
"""How deep ``_find`` looks through wrappers' ``inner``."""


# --- usage -----------------------------------------------------------------------------------------------


def _group_of(by: str) -> Callable[[LedgerRow], str]:
    if by == "model":
        return lambda r: (
            f"{r.provider}/{r.model}"
            if r.model and not r.model.startswith(f"{r.provider}/")
            else (r.model or r.provider)
        )
    if by == "provider":
        return lambda r: r.provider
    if by == "key":
        return lambda r: r.key if r.key is not None else "(anonymous)"
    if by == "day":
        return lambda r: r.at.strftime("%Y-%m-%d")
    return lambda r: r.at.strftime("%Y-%m-%dT%H:00Z")


def _percentiles(values: Sequence[int]) -> dict[str, int] | None:
    """Nearest-rank p50 / p95 / p99 of ``values`` (``None`` when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    return {f"p{q}": ordered[max(0, math.ceil(q / 100 * n) - 1)] for q in (50, 95, 99)}


def _money(amount: Decimal) -> str:
    """An exact decimal string, never in exponent form (``0.000012``, not ``1.2E-5``)."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _group(name: str, rows: Sequence[LedgerRow]) -> dict[str, Any]:
    t = totals_of(rows)
    kinds: dict[str, int] = {}
    for row in rows:
        if row.outcome == "error":
            kind = row.error_kind or "unknown"
            kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "group": name,
        "requests": t.rows,
        "ok": t.ok,
        "errors": t.errors,
        "cancelled": t.cancelled,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "reasoning_tokens": t.reasoning_tokens,
        "cost": {currency: _money(amount) for currency, amount in sorted(t.cost.items())},
        "unpriced": t.unpriced,
        "error_kinds": dict(sorted(kinds.items())),
        "latency_ms": _percentiles([r.elapsed_ms for r in rows]) or {"p50": None, "p95": None, "p99": None},
        "ttft_ms": _percentiles([r.ttft_ms for r in rows if r.ttft_ms is not None]),
    }


def usage_groups(rows: Iterable[LedgerRow], by: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``groups`` and ``totals`` of ``GET /api/usage`` over ``rows`` (see the module docstring)."""
    rows = list(rows)
    name_of = _group_of(by)
    grouped: dict[str, list[LedgerRow]] = {}
    for row in rows:
        grouped.setdefault(name_of(row), []).append(row)
    groups = [_group(name, members) for name, members in grouped.items()]
    if by in ("day", "hour"):
        groups.sort(key=lambda g: g["group"])
    else:
        groups.sort(key=lambda g: (-g["requests"], g["group"]))
    return groups, _group("total", rows)


def _since(text: str | None, now: datetime) -> datetime:
    if text is None or not text.strip():
        return now - timedelta(hours=24)
    try:
        return utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise GatewayRefusal(
            400, f"since must be an ISO 8601 time like 2025-01-31T00:00:00Z, got {text!r}", param="since"
        ) from None


async def _usage(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
    by = request.query.get("by", "model")
    if by not in _BY:
        raise GatewayRefusal(400, f"by must be one of {', '.join(_BY)}, got {by!r}", param="by")
    since = _since(request.query.get("since"), datetime.now(UTC))
    key = request.query.get("key")
    if not is_admin(gw, caller):
        if key is not None and key != caller.name:
            raise GatewayRefusal(403, "a gateway key sees its own usage only", param="key", code="admin_only")
        key = caller.name
    rows = await gw.ledger.rows(since=since, key=key, limit=MAX_USAGE_ROWS + 1)
    truncated = len(rows) > MAX_USAGE_ROWS
    if truncated:
        rows = rows[-MAX_USAGE_ROWS:]
    groups, totals = usage_groups(rows, by)
    return web.json_response(
        {
            "by": by,
            "since": since.isoformat(),
            "key": key,
            "truncated": truncated,
            "row_limit": MAX_USAGE_ROWS,
            "groups": groups,
            "totals": totals,
        }
    )


# --- providers -------------------------------------------------------------------------------------------


def _find(stack: Provider, kind: type[Any], accept: Callable[[Any], bool] = lambda _: True) -> Any:
    """The first wrapper of type ``kind`` (that ``accept``s) in ``stack``, following ``inner``."""
    current: Any = stack
    for _ in range(_DEPTH):
        if isinstance(current, kind) and accept(current):
            return current
        current = getattr(current, "inner", None)
        if current is None:
            return None
    return None


_PROBE = ChatRequest(messages=[Message.user("")])
"""A request for ``RateLimited.buckets`` (a configured scope's buckets do not depend on the request)."""


def _headroom(limited: RateLimited | None, scope: str | None = None) -> dict[str, Any] | None:
    if limited is None:
        return None if scope is None else {
            "scope": scope, "backend": None, "requests_left": None, "tokens_left": None, "slots_left": None
        }  # fmt: skip
    backend = limited.backend
    memory = isinstance(backend, MemoryBackend)
    out: dict[str, Any] = {
        "scope": limited.scope or scope,
        "backend": "memory" if memory else "redis",
        "requests_left": None,
        "tokens_left": None,
        "slots_left": None,
    }
    if isinstance(backend, MemoryBackend):
        for bucket in limited.buckets(_PROBE):
            out[f"{bucket.resource}_left"] = round(backend.level(bucket), 3)
    return out


def _scope_limit(gw: Gateway, scope: str) -> RateLimited | None:
    """The live ``RateLimited`` of a ``[rate_limits]`` scope, from the stack of the model it names."""
    try:
        stack = gw.registry.provider(scope)
    except (LlmError, ValueError):  # a scope whose provider cannot be built here (no key, ...)
        return None
    found: RateLimited | None = _find(stack, RateLimited, lambda r: r.scope == scope)
    return found


def _providers(gw: Gateway) -> dict[str, Any]:
    limits = gw.config.rate_limits.limits
    headroom = {scope: _headroom(_scope_limit(gw, scope), scope) for scope in limits}
    rows: list[dict[str, Any]] = []
    for name in gw.config.providers:
        rows.append(
            {
                "name": name,
                "kind": "provider",
                "router": None,
                "state": None,
                "error_ratio": None,
                "latency_ms": None,
                "in_flight": None,
                "rate_limit": headroom.get(name),
            }
        )
    for router_name in gw.config.routers:
        try:
            router: Router | None = _find(gw.registry.provider(router_name), Router)
        except (LlmError, ValueError):
            router = None
        if router is None:
            continue
        for deployment, health in zip(router.deployments, router.health(), strict=True):
            ewma = health.latency_ewma
            rows.append(
                {
                    "name": health.name,
                    "kind": "deployment",
                    "router": router_name,
                    "state": health.state,
                    "error_ratio": round(health.error_ratio, 4),
                    "latency_ms": None if ewma is None else round(ewma * 1000, 3),
                    "in_flight": health.in_flight,
                    "rate_limit": _headroom(_find(deployment.provider, RateLimited)),
                }
            )
    return {"providers": rows, "rate_limits": [h for h in headroom.values() if h is not None]}


# --- keys ------------------------------------------------------------------------------------------------


def _iso(when: datetime | None) -> str | None:
    return None if when is None else utc(when).isoformat().replace("+00:00", "Z")


def key_json(key: Any) -> dict[str, Any]:
    """A ``GatewayKey`` as the console sees it: everything but the secret (which the store never has)."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created": _iso(key.created),
        "models": None if key.models is None else list(key.models),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_cost": None if key.max_cost is None else _money(key.max_cost),
        "max_tokens": key.max_tokens,
        "period": key.period,
        "revoked": _iso(key.revoked),
        "active": key.revoked is None,
    }


def _store(gw: Gateway) -> Any:
    store = getattr(gw.auth, "store", None)
    if store is None or not all(callable(getattr(store, m, None)) for m in ("create", "list", "revoke")):
        raise GatewayRefusal(
            501, "this gateway has no key store (it was built with its own authenticator)", code="no_key_store"
        )
    return store


_KEY_FIELDS = ("name", "models", "rpm", "tpm", "max_cost", "max_tokens", "period")


def _number(body: dict[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GatewayRefusal(400, f"{field} must be a positive number or null, got {value!r}", param=field)
    return float(value)


async def _create_key(gw: Gateway, request: web.Request) -> web.Response:
    store = _store(gw)
    body = await gw.body(request)
    if not isinstance(body, dict):
        raise GatewayRefusal(400, "expected a JSON object with the key's name", param=None)
    extra = sorted(set(body) - set(_KEY_FIELDS))
    if extra:
        raise GatewayRefusal(400, f"unknown field {extra[0]!r}; expected: {', '.join(_KEY_FIELDS)}", param=extra[0])
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GatewayRefusal(400, "name is required: the key's name (letters, digits, '.', '_', '-')", param="name")
    models = body.get("models")
    if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
        raise GatewayRefusal(400, "models must be a list of model strings, or null for every model", param="models")
    max_cost = body.get("max_cost")
    if max_cost is not None and (isinstance(max_cost, bool) or not isinstance(max_cost, str | int | float)):
        raise GatewayRefusal(400, f'max_cost must be a decimal like "5.00", got {max_cost!r}', param="max_cost")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise GatewayRefusal(400, f"max_tokens must be an integer, got {max_tokens!r}", param="max_tokens")
    period = body.get("period") or "total"
    if not isinstance(period, str):
        raise GatewayRefusal(400, f"period must be day, month or total, got {period!r}", param="period")
    active = {key.name for key in await store.list(include_revoked=False)}
    if name.strip() in active:
        raise GatewayRefusal(
            409, f"an active key is already named {name.strip()!r}: revoke it first, or pick another name",
            param="name", code="key_exists",
        )  # fmt: skip
    try:
        key, secret = await store.create(
            name.strip(),
            models=models,
            rpm=_number(body, "rpm"),
            tpm=_number(body, "tpm"),
            max_cost=max_cost,
            max_tokens=max_tokens,
            period=period,
        )
    except ConfigError as exc:
        raise GatewayRefusal(400, exc.message, code="invalid_key") from None
    return web.json_response({"key": key_json(key), "secret": secret}, status=201)


async def _revoke_key(gw: Gateway, request: web.Request) -> web.Response:
    store = _store(gw)
    name = request.match_info["name"]
    try:
        key = await store.revoke(name)
    except ConfigError as exc:
        raise GatewayRefusal(404, exc.message, code="key_not_found") from None
    return web.json_response({"key": key_json(key)})


# --- the routes ------------------------------------------------------------------------------------------

Handler = Callable[[Gateway, web.Request, Caller], Any]


def add_admin_routes(app: web.Application, gw: Gateway) -> None:
    """The routes of the module docstring."""

    def route(handler: Handler, *, admin: bool = False) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            caller = await gw.caller(request)
            if admin and not is_admin(gw, caller):
                raise GatewayRefusal(403, "only the gateway's admin key may manage keys", code="admin_only")
            response: web.StreamResponse = await handler(gw, request, caller)
            return response

        return guard(CONSOLE_ERRORS, handle)

    async def whoami(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
        models = None if caller.allowed_models is None else list(caller.allowed_models)
        return web.json_response(
            {"name": caller.name, "admin": is_admin(gw, caller), "anonymous": caller.anonymous, "models": models}
        )

    async def providers(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
        return web.json_response(_providers(gw))

    async def list_keys(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
        keys = await _store(gw).list()
        return web.json_response({"keys": [key_json(k) for k in keys]})

    async def create_key(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
        return await _create_key(gw, request)

    async def revoke_key(gw: Gateway, request: web.Request, caller: Caller) -> web.Response:
        return await _revoke_key(gw, request)

    app.router.add_get("/api/whoami", route(whoami))
    app.router.add_get("/api/usage", route(_usage))
    app.router.add_get("/api/providers", route(providers))
    app.router.add_get("/api/keys", route(list_keys, admin=True))
    app.router.add_post("/api/keys", route(create_key, admin=True))
    app.router.add_delete("/api/keys/{name}", route(revoke_key, admin=True))
