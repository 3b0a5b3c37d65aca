"""``open_ledger(url)``: a ledger store named by a URL, as ``[budgets] store`` in ``llmrelay.toml`` gives it.

- ``memory``: a ``MemoryLedger`` (this process only, gone when it exits);
- ``sqlite:///PATH``: a ``SQLiteLedger`` at ``PATH``, relative to the working directory
  (``sqlite:///ledger.db``) or absolute with a fourth slash (``sqlite:////var/lib/llmrelay/ledger.db``);
- ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (or ``postgres://``): a ``PostgresLedger`` (asyncpg, the
  ``gateway`` extra), shared by every process and host that opens it; it connects on first use.

Anything else is a ``ConfigError`` naming the forms it accepts.
"""

from __future__ import annotations

from urllib.parse import unquote

from ._ledger import UsageLedger
from .memory import MemoryLedger
from .sqlite import SQLiteLedger

__all__ = ["open_ledger"]

_FORMS = (
    'expected "memory" or "sqlite:///PATH" (e.g. sqlite:///llmrelay-ledger.db), or postgresql://USER:PASSWORD@HOST/DB'
)


def open_ledger(url: str) -> UsageLedger:
    """The ledger store ``url`` names (see the module docstring). Opening a SQLite file happens on its
    first use; a bad URL raises ``ConfigError`` here."""
    from ..config._errors import ConfigError

    text = url.strip() if isinstance(url, str) else url
    if not isinstance(text, str) or not text:
        raise ConfigError(f"the ledger URL is empty or not a string ({url!r}); {_FORMS}")
    if text == "memory":
        return MemoryLedger()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        from .postgres import PostgresLedger

        if not sep or not rest.strip("/"):
            raise ConfigError(f"a PostgreSQL ledger URL needs a host or a database: {_FORMS}")
        return PostgresLedger("postgresql://" + rest)
    if scheme == "sqlite" and sep:
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(f"a SQLite ledger URL needs three slashes and a path, got {text!r}; {_FORMS}")
        path = unquote(rest[1:])
        if path in ("", "/") or path.endswith("/"):
            raise ConfigError(f"the SQLite ledger URL {text!r} names a directory, not a file; {_FORMS}")
        if path == ":memory:":
            raise ConfigError(f'use the URL "memory" for an in-memory ledger, not {text!r}')
        return SQLiteLedger(path)
    raise ConfigError(f"unknown ledger URL {text!r}; {_FORMS}")
