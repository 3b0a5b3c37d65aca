"""What a call cost, from the price data of the ``genai-prices`` package (extra ``llmrelay[cost]``).

``cost_of(usage, provider, model)`` prices a ``Usage`` at the prices in force at ``when`` (default: now):
uncached prompt tokens, cache reads and cache writes each at their own price, output tokens with reasoning
tokens at the reasoning price where the data has one. llmrelay's ``Usage`` has the meaning genai-prices
expects (``input_tokens`` is the whole prompt, cache reads and writes are parts of it; ``output_tokens``
includes the reasoning tokens), so the numbers pass through unchanged.

Prices follow the provider's *identity*, the llmrelay provider name (``openai``, ``anthropic``, ``gemini``,
``groq``, ...), never its base URL: a call to ``openai`` through a proxy (``OPENAI_BASE_URL``) costs what
OpenAI charges. A provider of your own (``[providers.work] type = "openai"``) and self-hosted servers have
no public price list: they are priced only through a ``PriceOverride``. What cannot be priced has
``total=None`` and ``unknown`` says why; it is never ``0``.

Only the price data bundled in the installed package is used: genai-prices' auto-update (``UpdatePrices``)
is never started here, so nothing is fetched at run time. (If the application itself starts it, the
fetched data is used and ``source`` says so.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._types import Usage

__all__ = ["GENAI_PRICES_PROVIDERS", "Cost", "PriceOverride", "cost_of"]

_INSTALL_HINT = "pip install 'llmrelay[cost]'"
_MILLION = Decimal(1_000_000)

GENAI_PRICES_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "groq": "groq",
    "together": "together",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "fireworks": "fireworks",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
    "cohere": "cohere",
}
"""llmrelay provider name -> genai-prices provider id. A name not here is priced only through an override."""

_SELF_HOSTED = frozenset({"local", "ollama", "ollama-openai", "vllm", "llamacpp", "lmstudio"})


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one call: ``total`` in ``currency``, or ``None`` with the reason in ``unknown``."""

    total: Decimal | None
    currency: str = "USD"
    source: str = ""
    """Where the prices came from: ``genai-prices 0.2.3 (openai/gpt-4o-mini)``, ``override work/my-model``."""
    unknown: str | None = None
    """Why the call could not be priced (``total`` is then ``None``, never ``0``)."""


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Your own prices, per million tokens. A cache price left ``None`` is charged at the input price."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None
    currency: str = "USD"

    def price(self, usage: Usage) -> Decimal:
        """The cost of ``usage`` (whose input and output token counts are known) at these prices."""
        read = usage.cache_read_tokens or 0
        write = usage.cache_write_tokens or 0
        uncached = (usage.input_tokens or 0) - read - write
        total = (
            uncached * _dec(self.input_per_mtok)
            + read * _dec(self.cache_read_per_mtok if self.cache_read_per_mtok is not None else self.input_per_mtok)
            + write * _dec(self.cache_write_per_mtok if self.cache_write_per_mtok is not None else self.input_per_mtok)
            + (usage.output_tokens or 0) * _dec(self.output_per_mtok)
        )
        return total / _MILLION


def cost_of(
    usage: Usage | None,
    provider: str | None,
    model: str | None,
    *,
    when: datetime | None = None,
    overrides: Mapping[str, PriceOverride] | None = None,
    requested: str | None = None,
) -> Cost:
    """The cost of ``usage`` on ``provider``'s ``model`` at ``when`` (default now; a naive time is UTC).

    ``overrides`` maps ``"PROVIDER/MODEL"`` or ``"PROVIDER"`` (every model of it) to a ``PriceOverride``;
    the most specific one wins, and an override wins over the package's data.

    ``model`` is the model the reply names; ``requested`` the one the call asked for, when known. They
    differ when a server answers with a snapshot (``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``) or a
    name of its own: an override keyed by either matches, and the package's data is asked for ``model``
    first, then for ``requested``.
    """
    if usage is None or usage.input_tokens is None or usage.output_tokens is None:
        return Cost(None, unknown="the provider did not report input and output token counts")
    bad = _inconsistent(usage)
    if bad:
        return Cost(None, unknown=bad)
    override = _override(provider, model, overrides or {}, requested)
    if override is not None:
        key, chosen = override
        return Cost(chosen.price(usage), currency=chosen.currency, source=f"override {key}")
    if not provider:
        return Cost(None, unknown="no provider: prices follow the provider's identity")
    if not model and not requested:
        return Cost(None, unknown=f"no model name from {provider!r}")
    provider_id = GENAI_PRICES_PROVIDERS.get(provider)
    if provider_id is None:
        kind = "a self-hosted provider" if provider in _SELF_HOSTED else "a provider with no public price list"
        return Cost(None, unknown=f"{provider!r} is {kind}: price it with a PriceOverride")
    cost = _from_genai_prices(usage, provider_id, model or requested or "", when)
    if cost.total is None and requested and model and requested != model:
        again = _from_genai_prices(usage, provider_id, requested, when)
        if again.total is not None:
            return again
    return cost


def _dec(value: Decimal | int | float | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _inconsistent(usage: Usage) -> str | None:
    parts = (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
    if parts > (usage.input_tokens or 0):
        return f"cache reads and writes ({parts}) exceed input_tokens ({usage.input_tokens})"
    if (usage.reasoning_tokens or 0) > (usage.output_tokens or 0):
        return f"reasoning_tokens ({usage.reasoning_tokens}) exceed output_tokens ({usage.output_tokens})"
    return None


def _override(
    provider: str | None, model: str | None, overrides: Mapping[str, PriceOverride], requested: str | None = None
) -> tuple[str, PriceOverride] | None:
    if not provider:
        return None
    for key in (
        f"{provider}/{model}" if model else None,
        f"{provider}/{requested}" if requested else None,
        provider,
    ):
        if key is not None and key in overrides:
            return key, overrides[key]
    return None


def _from_genai_prices(usage: Usage, provider_id: str, model: str, when: datetime | None) -> Cost:
    try:
        import genai_prices
        from genai_prices import data_snapshot
    except ImportError:
        return Cost(None, unknown=f"the genai-prices package is not installed: {_INSTALL_HINT}")
    version = f"genai-prices {genai_prices.__version__}"
    values: dict[str, Any] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cache_read_tokens:
        values["cache_read_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        values["cache_write_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    try:
        calc = genai_prices.calc_price(
            genai_prices.Usage(**values), model, provider_id=provider_id, genai_request_timestamp=when
        )
    except LookupError:
        return Cost(None, unknown=f"{version} has no price for {model!r} on {provider_id!r}")
    except ValueError as exc:  # usage the price model cannot split (genai-prices validates it)
        return Cost(None, unknown=f"{version} cannot price this usage: {exc}")
    source = f"{version} ({calc.provider.id}/{calc.model.id})"
    if calc.auto_update_timestamp is not None or data_snapshot.get_snapshot().from_auto_update:
        source += f", prices fetched {calc.auto_update_timestamp}"
    return Cost(calc.total_price, currency="USD", source=source)
