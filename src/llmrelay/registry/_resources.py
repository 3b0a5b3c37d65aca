"""What the configured stacks of one registry share: the rate-limit backend, the usage ledger and the prices.

``[rate_limits] backend = "memory"`` is one ``MemoryBackend`` for the whole process (so limits hold across
``llmrelay.chat()`` calls, which each open a registry of their own); a Redis URL is one ``RedisBackend``
per registry, closed with it, and the budget is shared with every process using that server.
``[budgets] store = "memory"`` is likewise one ``MemoryLedger`` per process; ``sqlite:///PATH`` is opened
once per registry (a relative path is relative to the configuration file's directory), so budgets hold
across processes and runs. Everything here is built on first use: a configuration without limits or
budgets never imports ``llmrelay.limits`` or ``llmrelay.metering``.

``breaker_store()`` is where routers keep their circuit breakers: with a Redis ``[rate_limits] backend``, a
``RedisBreakerStore`` on the backend's own connections (so replicas share breaker state as they share
limits); with ``memory``, ``None``: each router's breakers live in the router.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:
    from ..cost import PriceOverride
    from ..limits import LimitBackend
    from ..metering import Budget, UsageLedger
    from ..wrappers.breaker_store import BreakerStore

__all__ = ["StackResources", "price_overrides"]

_process_lock = threading.Lock()
_process_backend: LimitBackend | None = None
_process_ledger: UsageLedger | None = None


def _memory_backend() -> LimitBackend:
    global _process_backend
    with _process_lock:
        if _process_backend is None:
            from ..limits import MemoryBackend

            _process_backend = MemoryBackend()
        return _process_backend


def _memory_ledger() -> UsageLedger:
    global _process_ledger
    with _process_lock:
        if _process_ledger is None:
            from ..metering import MemoryLedger

            _process_ledger = MemoryLedger()
        return _process_ledger


def price_overrides(config: Config) -> dict[str, PriceOverride]:
    """``config``'s ``[prices]`` tables as ``PriceOverride`` values (for ``cost_of(overrides=...)``)."""
    from ..cost import PriceOverride

    return {
        name: PriceOverride(
            input_per_mtok=p.input_per_mtok,
            output_per_mtok=p.output_per_mtok,
            cache_read_per_mtok=p.cache_read_per_mtok,
            cache_write_per_mtok=p.cache_write_per_mtok,
            currency=p.currency,
        )
        for name, p in config.prices.items()
    }


class StackResources:
    """The shared parts of one registry's stacks, built on first use and closed with the registry."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._backend: LimitBackend | None = None
        self._ledger: UsageLedger | None = None
        self._breakers: BreakerStore | None = None
        self._owned: list[LimitBackend | UsageLedger] = []

    def limit_backend(self) -> LimitBackend:
        """The ``[rate_limits] backend``."""
        with self._lock:
            if self._backend is None:
                url = self.config.rate_limits.backend
                if url == "memory":
                    self._backend = _memory_backend()
                else:
                    from ..limits import RedisBackend

                    self._backend = RedisBackend(url)
                    self._owned.append(self._backend)
            return self._backend

    def breaker_store(self) -> BreakerStore | None:
        """Where routers' breakers keep their state: Redis with a Redis ``[rate_limits] backend``, else
        ``None`` (in each router)."""
        if self.config.rate_limits.backend == "memory":
            return None
        from ..limits.breaker_redis import RedisBreakerStore
        from ..limits.redis import RedisBackend

        backend = self.limit_backend()
        with self._lock:
            if self._breakers is None:
                assert isinstance(backend, RedisBackend)
                self._breakers = RedisBreakerStore(client=backend.client)
            return self._breakers

    def ledger(self) -> UsageLedger:
        """The ``[budgets] store``."""
        budgets = self.config.budgets
        assert budgets is not None, "no [budgets] table"
        with self._lock:
            if self._ledger is None:
                if budgets.store == "memory":
                    self._ledger = _memory_ledger()
                else:
                    from ..metering import open_ledger

                    self._ledger = open_ledger(self._sqlite_url(budgets.store))
                    self._owned.append(self._ledger)
            return self._ledger

    def _sqlite_url(self, url: str) -> str:
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        if not path.is_absolute() and self.config.path is not None:
            path = self.config.path.parent / path
        return f"sqlite:///{path}"

    def budgets(self) -> tuple[Budget, ...]:
        """The ``[budgets.SCOPE]`` tables as ``Budget`` values."""
        from ..metering import Budget

        config = self.config.budgets
        if config is None:
            return ()
        return tuple(
            Budget(scope, max_cost=b.max_cost, max_tokens=b.max_tokens, period=b.period, currency=b.currency)
            for scope, b in config.budgets.items()
        )

    def prices(self) -> Mapping[str, PriceOverride]:
        """The ``[prices]`` tables as ``PriceOverride`` values, keyed as in the file."""
        return price_overrides(self.config)

    async def aclose(self) -> None:
        with self._lock:
            owned, self._owned = self._owned, []
            self._backend = None
            self._ledger = None
            self._breakers = None
        for item in owned:
            await item.aclose()
