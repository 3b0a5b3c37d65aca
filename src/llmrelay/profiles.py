"""Model profiles as data: context window, output limit and capabilities per (provider, model).

``profile_for(provider, model, dialect=...)`` walks ``PROFILES`` in order and returns the first rule's
profile that matches; first match wins, so specific rules come before general ones. A rule matches when
its ``provider`` (if set) equals the provider's name (``openai``, ``groq``, ``work``, ...), its ``dialect``
(if set) equals the provider's wire dialect or type (``openai``, ``anthropic``, ``gemini``, ``ollama``,
``cohere``, ``local``, ...), and its ``model`` pattern matches the model name: a glob (``fnmatch``,
case-insensitive) or a compiled regular expression (``re.fullmatch``). A provider with no default model
is looked up with the empty name, which only ``*`` matches.

Rules keyed on a provider name follow the provider's identity: ``groq/llama-3.3-70b-versatile`` gets
Groq's numbers, while the same model name behind ``[providers.work] type = "openai"`` gets only what the
dialect can carry. Each dialect ends with a ``*`` rule that says what its API can express (today's
behaviour for a model we know nothing about). Nothing matched: ``UNKNOWN``, the ``Capabilities``
defaults with both windows ``None`` (unknown).

Numbers come from the vendors' model pages cited next to each rule; ``None`` means unknown or
unbounded (up to the context window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ._provider import Capabilities

__all__ = ["PROFILES", "UNKNOWN", "ModelProfile", "ProfileRule", "profile_for"]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What a model can take and do: its windows (``None``: unknown) and its capability flags."""

    context_window: int | None = None
    """Prompt plus output, in tokens."""
    max_output_tokens: int | None = None
    """The most tokens one reply may have."""
    streaming: bool = True
    tools: bool = True
    parallel_tools: bool = True
    vision: bool = False
    json_schema: bool = False
    reasoning: bool = False

    def capabilities(self) -> Capabilities:
        """The flags as the public ``Capabilities`` type that ``Provider.capabilities()`` returns."""
        return Capabilities(
            streaming=self.streaming,
            tools=self.tools,
            parallel_tools=self.parallel_tools,
            vision=self.vision,
            json_schema=self.json_schema,
            reasoning=self.reasoning,
        )


@dataclass(frozen=True, slots=True)
class ProfileRule:
    """One row of ``PROFILES``: which providers and models it covers, and their profile."""

    model: str | re.Pattern[str]
    """A glob (case-insensitive) or a compiled regular expression (matched whole)."""
    profile: ModelProfile
    provider: str | None = None
    """The provider's name (the model string's ``PROVIDER``); ``None``: any."""
    dialect: str | None = None
    """The provider's wire dialect or type; ``None``: any."""

    def matches(self, provider: str, model: str, dialect: str | None) -> bool:
        """Whether this rule covers ``model`` served by ``provider`` (speaking ``dialect``)."""
        if self.provider is not None and self.provider != provider:
            return False
        if self.dialect is not None and self.dialect != dialect:
            return False
        if isinstance(self.model, re.Pattern):
            return self.model.fullmatch(model) is not None
        return fnmatchcase(model.lower(), self.model.lower())


UNKNOWN = ModelProfile()
"""The profile of a model no rule matches: ``Capabilities()``'s defaults, windows unknown."""

# What each dialect's API can carry, for a model no specific rule knows (vision, thinking and tools then
# depend on the model actually served).
_WIRE_FULL = ModelProfile(vision=True, json_schema=True, reasoning=True)

# OpenAI, https://platform.openai.com/docs/models (each model's page: context window, max output tokens,
# modalities, function calling, structured outputs, reasoning).
_GPT_4O = ModelProfile(context_window=128_000, max_output_tokens=16_384, vision=True, json_schema=True)
_GPT_41 = ModelProfile(context_window=1_047_576, max_output_tokens=32_768, vision=True, json_schema=True)
_O_SERIES = ModelProfile(
    context_window=200_000, max_output_tokens=100_000, vision=True, json_schema=True, reasoning=True
)
_O_MINI = ModelProfile(context_window=200_000, max_output_tokens=100_000, json_schema=True, reasoning=True)

# Anthropic, https://docs.anthropic.com/en/docs/about-claude/models/overview (200K context; max output
# 32K for Opus 4 / 4.1, 64K for Opus 4.5, Sonnet 4 / 4.5 and Haiku 4.5; extended thinking; vision).
_CLAUDE_4_64K = ModelProfile(
    context_window=200_000, max_output_tokens=64_000, vision=True, json_schema=True, reasoning=True
)
_CLAUDE_4_32K = ModelProfile(
    context_window=200_000, max_output_tokens=32_000, vision=True, json_schema=True, reasoning=True
)

# Gemini, https://ai.google.dev/gemini-api/docs/models (input 1,048,576 tokens, output 65,536; thinking).
_GEMINI_25 = ModelProfile(
    context_window=1_048_576, max_output_tokens=65_536, vision=True, json_schema=True, reasoning=True
)

# Groq, https://console.groq.com/docs/models (context window, max completion tokens). Structured outputs
# (json_schema) are served for a listed subset only (https://console.groq.com/docs/structured-outputs);
# the Llama 3.x models answer "does not support response format json_schema".
_GROQ_LLAMA_33 = ModelProfile(context_window=131_072, max_output_tokens=32_768)
_GROQ_LLAMA_31_8B = ModelProfile(context_window=131_072, max_output_tokens=131_072)
_GROQ_QWEN3_32B = ModelProfile(context_window=131_072, max_output_tokens=40_960, reasoning=True)

# Ollama, https://ollama.com/library/<model> (the model's trained context; Ollama's own num_ctx may be
# smaller). Tools and thinking as the library page tags them.
_LLAMA_31_32 = ModelProfile(context_window=131_072, json_schema=True)
_LLAMA_32_VISION = ModelProfile(
    context_window=131_072, tools=False, parallel_tools=False, vision=True, json_schema=True
)
_QWEN_25 = ModelProfile(context_window=32_768, json_schema=True)
_QWEN_3 = ModelProfile(context_window=40_960, json_schema=True, reasoning=True)

# The embedded model: SmolLM2 (https://huggingface.co/HuggingFaceTB/SmolLM2-1.7B-Instruct, 8K trained
# context); LocalProvider reports its configured n_ctx instead. No tools or images; JSON via a grammar.
_LOCAL = ModelProfile(tools=False, parallel_tools=False, json_schema=True)
_SMOLLM2 = ModelProfile(context_window=8_192, tools=False, parallel_tools=False, json_schema=True)

PROFILES: list[ProfileRule] = [
    ProfileRule("gpt-4o*", _GPT_4O, provider="openai"),
    ProfileRule("gpt-4.1*", _GPT_41, provider="openai"),
    ProfileRule("o3-mini*", _O_MINI, provider="openai"),
    ProfileRule(re.compile(r"o(3|4-mini)(-.*)?"), _O_SERIES, provider="openai"),
    ProfileRule("claude-opus-4-5*", _CLAUDE_4_64K, dialect="anthropic"),
    ProfileRule("claude-opus-4*", _CLAUDE_4_32K, dialect="anthropic"),
    ProfileRule("claude-sonnet-4*", _CLAUDE_4_64K, dialect="anthropic"),
    ProfileRule("claude-haiku-4*", _CLAUDE_4_64K, dialect="anthropic"),
    ProfileRule("gemini-2.5-pro*", _GEMINI_25, dialect="gemini"),
    ProfileRule("gemini-2.5-flash*", _GEMINI_25, dialect="gemini"),
    ProfileRule("llama-3.3-70b-versatile", _GROQ_LLAMA_33, provider="groq"),
    ProfileRule("llama-3.1-8b-instant", _GROQ_LLAMA_31_8B, provider="groq"),
    ProfileRule("qwen/qwen3-32b", _GROQ_QWEN3_32B, provider="groq"),
    ProfileRule("llama3.2-vision*", _LLAMA_32_VISION, dialect="ollama"),
    ProfileRule(re.compile(r"llama3\.[12](:.*)?"), _LLAMA_31_32, dialect="ollama"),
    ProfileRule("qwen2.5*", _QWEN_25, dialect="ollama"),
    ProfileRule("qwen3*", _QWEN_3, dialect="ollama"),
    ProfileRule("smollm2", _SMOLLM2, dialect="local"),
    # What each dialect can carry, for any other model.
    ProfileRule("*", _WIRE_FULL, dialect="openai"),
    ProfileRule("*", _WIRE_FULL, dialect="anthropic"),
    ProfileRule("*", _WIRE_FULL, dialect="gemini"),
    ProfileRule("*", _WIRE_FULL, dialect="ollama"),
    ProfileRule("*", _WIRE_FULL, dialect="cohere"),
    ProfileRule("*", _LOCAL, dialect="local"),
]
"""The table, matched in order (first match wins). Add a rule with ``PROFILES.insert(0, rule)`` to
override one for your own models."""


def profile_for(provider: str, model: str | None, *, dialect: str | None = None) -> ModelProfile:
    """The profile of ``model`` served by the provider named ``provider`` (speaking ``dialect``)."""
    name = model or ""
    for rule in PROFILES:
        if rule.matches(provider, name, dialect):
            return rule.profile
    return UNKNOWN
