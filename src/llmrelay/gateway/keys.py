"""Gateway keys: who may call the gateway, with which models, limits and budget (an ``Authenticator``).

::

    store = open_key_store("sqlite:///keys.db")        # or postgresql://... for replicas
    key, secret = await store.create("team-a", models=["openai/*"], rpm=60, max_cost=Decimal("5"), period="day")
    print(secret)                                              # shown once: llmr_...
    caller = await store.authenticate(secret)                  # a Caller, or None (401)

**Secrets.** A secret is ``llmr_`` and 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits). The
store keeps only its SHA-256 (a fast hash is enough for a secret that cannot be guessed; a slow password
hash protects low-entropy passwords, which these are not) and a short prefix (``llmr_`` and 6 characters)
to tell keys apart in ``llmrelay keys list``. ``create`` returns the secret once; nothing else ever does,
and it is never logged nor put in a repr. ``authenticate`` finds the key by the hash and confirms it with
``hmac.compare_digest``, in constant time: the snapshot is indexed by the hash's first 16 hex digits,
and the whole hash is then compared.

**The hot path does not touch the database.** The store keeps a snapshot of the active keys (hash ->
key) and reloads it when it is older than ``ttl`` seconds (5 by default; one reload at a time, shared by
the requests that need it). So a key created or revoked by another process (``llmrelay keys revoke`` on
the same store, another replica) takes effect within ``ttl`` seconds; in the process that did it, at
once. An unknown secret costs a dictionary lookup, not a query. ``open`` (no active key: the gateway
serves the anonymous caller, on loopback only) is read from the same snapshot; before the first load it
is ``False``, so a store that could not be read never opens the gateway. ``open_key_store`` loads it
before returning (blocking its caller for one read, at start-up).

Names are unique among active keys (a revoked key's name may be used again): they are what ledger rows
and ``key:NAME`` budgets carry. Storage is behind ``KeyBackend``: ``keys_sqlite`` (a file, the default)
and ``keys_postgres`` (asyncpg).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal, Protocol
from urllib.parse import unquote

from ._hooks import Authenticator, Caller

__all__ = [
    "SECRET_PREFIX",
    "GatewayKey",
    "KeyBackend",
    "KeyStore",
    "hash_secret",
    "new_secret",
    "open_key_store",
]

log = logging.getLogger("llmrelay.gateway")

SECRET_PREFIX = "llmr_"
_SHOWN = len(SECRET_PREFIX) + 6
_LOOKUP = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PERIODS = ("day", "month", "total")


def new_secret() -> str:
    """A fresh secret: ``llmr_`` and 256 random bits, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps of a secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """One gateway key as stored: everything but the secret (which the store never keeps)."""

    id: str
    name: str
    prefix: str
    """The secret's first characters (``llmr_AbC123``), to recognise a key; not enough to use it."""
    created: datetime
    models: tuple[str, ...] | None = None
    """Model strings, aliases, fallback or router names, or ``PROVIDER/*``; ``None``: any model."""
    rpm: float | None = None
    tpm: float | None = None
    max_cost: Decimal | None = None
    max_tokens: int | None = None
    period: Literal["day", "month", "total"] = "total"
    revoked: datetime | None = None

    def __repr__(self) -> str:
        return f"GatewayKey(id={self.id!r}, name={self.name!r}, prefix={self.prefix!r}, revoked={self.revoked})"

    @property
    def active(self) -> bool:
        return self.revoked is None

    def caller(self) -> Caller:
        """The ``Caller`` a request presenting this key's secret is."""
        return Caller(
            key_id=self.id,
            name=self.name,
            allowed_models=self.models,
            requests_per_minute=self.rpm,
            tokens_per_minute=self.tpm,
            max_cost=self.max_cost,
            max_tokens=self.max_tokens,
            budget_period=self.period,
        )


class KeyBackend(Protocol):
    """Where keys are kept. ``insert`` must refuse (``ConfigError``) a second active key of one name."""

    async def insert(self, key: GatewayKey, secret_hash: str) -> None: ...

    async def load(self, *, include_revoked: bool = False) -> list[tuple[GatewayKey, str]]:
        """Keys with the hashes of their secrets, oldest first."""
        ...

    async def revoke(self, name_or_id: str, at: datetime) -> GatewayKey | None:
        """Mark the active key with that name or id revoked; ``None`` if there is none."""
        ...

    def load_blocking(self) -> list[tuple[GatewayKey, str]]:
        """The active keys, read without the event loop (at start-up, before serving)."""
        ...

    async def aclose(self) -> None: ...


def _validate(
    name: str,
    models: Sequence[str] | None,
    rpm: float | None,
    tpm: float | None,
    max_cost: Decimal | str | float | None,
    max_tokens: int | None,
    period: str,
) -> tuple[tuple[str, ...] | None, Decimal | None]:
    from ..config._errors import ConfigError

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"a gateway key name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {name!r}"
        )
    if models is not None:
        models = tuple(m.strip() for m in models)
        if not models or any(not m for m in models):
            raise ConfigError("a key's model list must name at least one model (leave it out to allow every model)")
    for label, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ConfigError(f"a key's {label} must be a positive number, got {value!r}")
    cost: Decimal | None = None
    if max_cost is not None:
        try:
            cost = max_cost if isinstance(max_cost, Decimal) else Decimal(str(max_cost))
        except InvalidOperation:
            raise ConfigError(f"a key's max_cost must be a decimal number, got {max_cost!r}") from None
        if not cost.is_finite() or cost < 0:
            raise ConfigError(f"a key's max_cost must be a non-negative number, got {max_cost!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 0):
        raise ConfigError(f"a key's max_tokens must be a non-negative integer, got {max_tokens!r}")
    if period not in _PERIODS:
        raise ConfigError(f"a key's budget period must be 'day', 'month' or 'total', got {period!r}")
    if period != "total" and cost is None and max_tokens is None:
        raise ConfigError(f"a budget period ({period!r}) needs a budget: give max_cost, max_tokens or both")
    return models, cost


class KeyStore:
    """Gateway keys over a ``KeyBackend``, with the snapshot cache of the module docstring; an
    ``Authenticator``."""

    def __init__(self, backend: KeyBackend, *, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.ttl = ttl
        self._clock = clock
        self._by_hash: dict[str, tuple[GatewayKey, str]] = {}
        """The first ``_LOOKUP`` hex digits of a secret's hash -> its key and whole hash."""
        self._loaded_at: float | None = None
        self._loading: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"KeyStore({self.backend!r}, ttl={self.ttl})"

    @property
    def open(self) -> bool:
        """True when the snapshot has no active key (``False`` before the first load). A stale snapshot
        is answered from and reloaded in the background, so a key created elsewhere closes an open
        gateway within about ``ttl`` seconds."""
        loaded = self._loaded_at
        if loaded is not None and self._clock() - loaded >= self.ttl and self._background is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                task = loop.create_task(self._fresh())
                self._background = task
                task.add_done_callback(self._background_done)
        return loaded is not None and not self._by_hash

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("reloading the gateway keys failed: %s", task.exception())

    def _install(self, keys: Sequence[tuple[GatewayKey, str]]) -> None:
        self._by_hash = {digest[:_LOOKUP]: (key, digest) for key, digest in keys if key.active}
        self._loaded_at = self._clock()

    async def refresh(self) -> None:
        """Reload the snapshot of active keys now."""
        self._install(await self.backend.load())

    def refresh_blocking(self) -> None:
        """Reload the snapshot now without the event loop (start-up: ``open`` is then right at once)."""
        self._install(self.backend.load_blocking())

    async def _fresh(self) -> None:
        loaded = self._loaded_at
        if loaded is not None and self._clock() - loaded < self.ttl:
            return
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._loaded_at == loaded:  # nobody reloaded it while we waited
                await self.refresh()

    async def authenticate(self, secret: str | None) -> Caller | None:
        """The caller of ``secret``, or ``None`` (missing, malformed, unknown or revoked)."""
        if not secret or not secret.startswith(SECRET_PREFIX) or len(secret) > 256:
            return None
        await self._fresh()
        digest = hash_secret(secret)
        found = self._by_hash.get(digest[:_LOOKUP])
        if found is None:
            return None
        key, stored = found
        # The lookup used a part of the hash; the whole of it is compared in constant time.
        if not hmac.compare_digest(stored.encode("ascii"), digest.encode("ascii")):
            return None
        return key.caller()

    async def create(
        self,
        name: str,
        *,
        models: Sequence[str] | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        max_cost: Decimal | str | float | None = None,
        max_tokens: int | None = None,
        period: Literal["day", "month", "total"] = "total",
    ) -> tuple[GatewayKey, str]:
        """A new key and its secret (returned this once: show it to the user, then forget it)."""
        allowed, cost = _validate(name, models, rpm, tpm, max_cost, max_tokens, period)
        secret = new_secret()
        key = GatewayKey(
            id="gk_" + secrets.token_hex(8),
            name=name,
            prefix=secret[:_SHOWN],
            created=datetime.now(UTC).replace(microsecond=0),
            models=allowed,
            rpm=None if rpm is None else float(rpm),
            tpm=None if tpm is None else float(tpm),
            max_cost=cost,
            max_tokens=max_tokens,
            period=period,
        )
        digest = hash_secret(secret)
        await self.backend.insert(key, digest)
        if self._loaded_at is not None:
            self._by_hash[digest[:_LOOKUP]] = (key, digest)
        return key, secret

    async def list(self, *, include_revoked: bool = True) -> list[GatewayKey]:
        """Every key (oldest first), without secrets; ``include_revoked=False``: the active ones."""
        return [key for key, _ in await self.backend.load(include_revoked=include_revoked)]

    async def revoke(self, name_or_id: str) -> GatewayKey:
        """Revoke the active key with that name (or id): at once in this process, within ``ttl`` seconds
        in the others. ``ConfigError`` when there is no such active key."""
        from ..config._errors import ConfigError

        key = await self.backend.revoke(name_or_id, datetime.now(UTC).replace(microsecond=0))
        if key is None:
            raise ConfigError(
                f"no active gateway key is named {name_or_id!r} (or has that id): `llmrelay keys list` shows them"
            )
        self._by_hash = {h: (k, d) for h, (k, d) in self._by_hash.items() if k.id != key.id}
        return key

    async def aclose(self) -> None:
        await self.backend.aclose()


_FORMS = "expected sqlite:///PATH (e.g. sqlite:///llmrelay-keys.db) or postgresql://USER:PASSWORD@HOST/DB"


def key_backend(url: str) -> KeyBackend:
    """The backend ``url`` names (``sqlite:///PATH`` or ``postgresql://...``); ``ConfigError`` otherwise."""
    from ..config._errors import ConfigError

    text = url.strip() if isinstance(url, str) else ""
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres") and sep and rest.strip("/"):
        from .keys_postgres import PostgresKeys

        return PostgresKeys("postgresql://" + rest)
    if scheme == "sqlite" and sep:
        path = unquote(rest[1:]) if rest.startswith("/") else ""
        if not path or path.endswith("/") or path == ":memory:":
            raise ConfigError(f"a SQLite key store URL needs three slashes and a file path, got {text!r}; {_FORMS}")
        from .keys_sqlite import SQLiteKeys

        return SQLiteKeys(path)
    raise ConfigError(f"unknown key store URL {url!r}; {_FORMS}")


def open_key_store(url: str, *, ttl: float = 5.0) -> KeyStore:
    """The key store at ``url`` with its snapshot loaded now, before any request (so ``open`` is right
    from the start; it blocks the calling thread for one read); ``ConfigError`` for a bad URL or a store
    that cannot be read."""
    store = KeyStore(key_backend(url), ttl=ttl)
    store.refresh_blocking()
    return store


def _authenticator(store: KeyStore) -> Authenticator:
    """A ``KeyStore`` is an ``Authenticator`` (checked by mypy, never called)."""
    return store
