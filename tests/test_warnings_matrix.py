"""The warnings matrix: for each dialect, which settings it cannot express (and so reports as a
``CallWarning`` instead of dropping silently). Rows are settings, the table says which dialects warn."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay import ChatRequest, ImagePart, JsonSchemaFormat, Message, TextPart, ToolDef
from llmrelay.wire.anthropic import AnthropicDialect
from llmrelay.wire.cohere import CohereDialect
from llmrelay.wire.dialect import Dialect
from llmrelay.wire.gemini import GeminiDialect
from llmrelay.wire.ollama import OllamaDialect
from llmrelay.wire.openai_chat import OpenAIChatDialect

TOOL = ToolDef("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})
DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIChatDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
    "ollama": OllamaDialect(),
    "cohere": CohereDialect(),
}

CASES: dict[str, dict[str, Any]] = {
    "seed": {"seed": 1},
    "parallel_tool_calls=False": {"tools": [TOOL], "parallel_tool_calls": False},
    "tool_choice=required": {"tools": [TOOL], "tool_choice": "required"},
    "tool_choice=<name>": {"tools": [TOOL], "tool_choice": "get_weather"},
    "response_format=json": {"response_format": "json"},
    "response_format=schema": {"response_format": JsonSchemaFormat({"type": "object"})},
    "stop": {"stop": ["END"]},
    "top_p": {"top_p": 0.5},
    "temperature=1.5": {"temperature": 1.5},
    "image by URL": {"messages": [Message.user([TextPart("a"), ImagePart(url="https://example.com/a.png")])]},
    "image inline": {"messages": [Message.user([TextPart("a"), ImagePart(data="aGk=", media_type="image/png")])]},
    "max_tokens missing": {"max_tokens": None},
}

# Which dialects warn for each case; every other dialect must encode it without a warning.
WARNS: dict[str, set[str]] = {
    "seed": {"anthropic"},
    "parallel_tool_calls=False": {"gemini", "ollama", "cohere"},
    "tool_choice=required": {"ollama"},
    "tool_choice=<name>": {"ollama"},
    "response_format=json": {"anthropic"},
    "response_format=schema": set(),
    "stop": set(),
    "top_p": set(),
    "temperature=1.5": {"anthropic"},  # clamped to Anthropic's 0..1
    "image by URL": {"ollama"},  # Ollama needs the bytes
    "image inline": set(),
    "max_tokens missing": {"anthropic"},  # Anthropic requires it: a default is sent, and said so
}


def test_the_table_covers_every_case() -> None:
    assert set(WARNS) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_warnings_matrix(dialect: str, case: str) -> None:
    kw = {"messages": [Message.user("x")], "max_tokens": 10, **CASES[case]}
    encoded = DIALECTS[dialect].encode(ChatRequest(**kw), model="m", stream=False)
    if dialect in WARNS[case]:
        assert encoded.warnings, f"{dialect} should warn for {case}"
        assert all(w.message for w in encoded.warnings)
    else:
        assert not encoded.warnings, f"{dialect} warned for {case}: {encoded.warnings}"
