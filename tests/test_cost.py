"""Cost from genai-prices' bundled price data: hand-computed totals, unknown never 0, identity not base URL,
overrides, time-aware prices, and the same cost for a streamed and a non-streamed reply."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices.data_snapshot import get_snapshot

from llmrelay import ChatRequest, Cost, Message, OpenAIProvider, PriceOverride, Usage, cost_of
from llmrelay.testing import FakeUpstream, Reply

KEY = "sk-test-SECRETSECRETSECRET1234"
SOURCE = f"genai-prices {genai_prices.__version__}"
MTOK = Decimal(1_000_000)


def prices(provider_id: str, model: str, when: datetime) -> Any:
    """The package's own prices for a model at a time (read from its data, not through cost_of)."""
    _, info = get_snapshot().find_provider_model(model, None, provider_id, None)
    return info.get_prices(when)


def test_gpt_4o_mini_with_cached_tokens_is_priced_by_hand() -> None:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    p = prices("openai", "gpt-4o-mini", when)
    # 2000 prompt tokens of which 1024 were cache reads (a part of input_tokens), 100 output tokens.
    usage = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=1024)
    by_hand = (976 * p.input_mtok + 1024 * p.cache_read_mtok + 100 * p.output_mtok) / MTOK
    cost = cost_of(usage, "openai", "gpt-4o-mini", when=when)
    assert cost == Cost(by_hand, "USD", f"{SOURCE} (openai/gpt-4o-mini)", None)
    # The data today: $0.15 input, $0.075 cache read, $0.60 output per million tokens.
    assert cost.total == Decimal("0.0002832")


def test_anthropic_cache_writes_and_reads_each_have_their_price() -> None:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    p = prices("anthropic", "claude-haiku-4-5", when)
    usage = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=1000, cache_write_tokens=500)
    by_hand = (500 * p.input_mtok + 1000 * p.cache_read_mtok + 500 * p.cache_write_mtok + 100 * p.output_mtok) / MTOK
    assert cost_of(usage, "anthropic", "claude-haiku-4-5", when=when).total == by_hand
    assert p.cache_write_mtok != p.input_mtok != p.cache_read_mtok  # the split matters


def test_reasoning_tokens_are_priced_at_the_reasoning_price() -> None:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    p = prices("perplexity", "sonar-deep-research", when)
    assert p.output_reasoning_mtok != p.output_mtok
    usage = Usage(input_tokens=1000, output_tokens=500, reasoning_tokens=200)  # reasoning is a part of output
    by_hand = (1000 * p.input_mtok + 300 * p.output_mtok + 200 * p.output_reasoning_mtok) / MTOK
    assert cost_of(usage, "perplexity", "sonar-deep-research", when=when).total == by_hand


def test_prices_are_the_ones_in_force_at_the_time_of_the_call() -> None:
    # Claude Sonnet 4.6 prompts over 200k tokens cost double until 2026-03-13, then one flat price.
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    before = cost_of(usage, "anthropic", "claude-sonnet-4-6", when=datetime(2026, 3, 1))
    after = cost_of(usage, "anthropic", "claude-sonnet-4-6", when=datetime(2026, 3, 20))
    assert before.total == (300_000 * Decimal(6) + 1000 * Decimal("22.5")) / MTOK == Decimal("1.8225")
    assert after.total == (300_000 * Decimal(3) + 1000 * Decimal(15)) / MTOK == Decimal("0.915")


def test_what_cannot_be_priced_is_unknown_with_a_reason_never_zero() -> None:
    usage = Usage(input_tokens=10, output_tokens=5)
    unknown_model = cost_of(usage, "openai", "gpt-no-such-model")
    assert unknown_model.total is None
    assert unknown_model.unknown is not None and "gpt-no-such-model" in unknown_model.unknown
    assert cost_of(None, "openai", "gpt-4o-mini").unknown == "the provider did not report input and output token counts"
    assert cost_of(Usage(input_tokens=10), "openai", "gpt-4o-mini").total is None
    local = cost_of(usage, "local", "smollm2")
    assert local.total is None and local.unknown is not None and "self-hosted" in local.unknown
    broken = cost_of(Usage(input_tokens=10, output_tokens=5, cache_read_tokens=11), "openai", "gpt-4o-mini")
    assert broken.total is None and broken.unknown is not None and "exceed input_tokens" in broken.unknown


def test_a_provider_of_your_own_is_priced_only_through_an_override() -> None:
    usage = Usage(input_tokens=2000, output_tokens=100, cache_read_tokens=1000)
    unpriced = cost_of(usage, "work", "gpt-4o-mini")  # [providers.work] type = "openai", same model name
    assert unpriced.total is None and unpriced.unknown is not None and "PriceOverride" in unpriced.unknown
    override = PriceOverride(
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("4"), cache_read_per_mtok=Decimal("0.1")
    )
    priced = cost_of(usage, "work", "gpt-4o-mini", overrides={"work": override})
    assert priced == Cost((1000 * 1 + 1000 * Decimal("0.1") + 100 * 4) / MTOK, "USD", "override work", None)
    assert priced.total == Decimal("0.0015")
    # The most specific override wins; an unset cache price is the input price.
    specific = PriceOverride(input_per_mtok=Decimal("2"), output_per_mtok=Decimal("8"))
    both = {"work": override, "work/gpt-4o-mini": specific}
    assert cost_of(usage, "work", "gpt-4o-mini", overrides=both).total == (2000 * 2 + 100 * 8) / MTOK
    assert cost_of(usage, "work", "other", overrides=both).source == "override work"


def _body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
        "usage": usage,
    }


def _chunks(usage: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18"}
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi!"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage},
    ]


async def test_streamed_and_not_streamed_cost_the_same_and_follow_identity_not_base_url(
    upstream: FakeUpstream,
) -> None:
    wire_usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "total_tokens": 2100,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    upstream.add(Reply.json(_body(wire_usage)))
    upstream.add(Reply.sse([*_chunks(wire_usage), "[DONE]"]))
    request = ChatRequest(messages=[Message.user("Hello")])
    when = datetime(2026, 6, 1, tzinfo=UTC)
    # The base URL is a local test server (as OPENAI_BASE_URL pointing at a proxy): the price is OpenAI's.
    async with OpenAIProvider("gpt-4o-mini", base_url=upstream.url("/v1"), api_key=KEY) as p:
        body = await p.chat(request)
        async with p.chat_stream(request) as stream:
            _ = [event async for event in stream]
        streamed = stream.response()
    assert body.usage == streamed.usage
    plain = cost_of(body.usage, body.provider, body.model, when=when)
    from_stream = cost_of(streamed.usage, streamed.provider, streamed.model, when=when)
    assert body.provider == streamed.provider == "openai"
    assert plain == from_stream
    assert plain.total == Decimal("0.0002832")  # the hand-computed gpt-4o-mini figure above
