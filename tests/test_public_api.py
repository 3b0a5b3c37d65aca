"""The public surface: a flat namespace, a sorted and complete ``__all__``, docstrings, cheap import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import llmrelay


def test_all_is_sorted_and_importable() -> None:
    assert list(llmrelay.__all__) == sorted(llmrelay.__all__)
    for name in llmrelay.__all__:
        assert getattr(llmrelay, name) is not None, name


def test_every_public_class_and_function_has_a_docstring() -> None:
    for name in llmrelay.__all__:
        obj = getattr(llmrelay, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_import_does_not_load_the_http_stack_or_sdks() -> None:
    code = (
        "import sys, llmrelay; "
        "heavy = [m for m in ('aiohttp', 'httpx', 'openai', 'anthropic', 'llama_cpp', 'pydantic')"
        " if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_types_are_frozen_and_comparable() -> None:
    import dataclasses

    import pytest

    m = llmrelay.Message.user("hi")
    assert m == llmrelay.Message.user("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.content = "x"  # type: ignore[misc]
    assert llmrelay.Usage(1, 2).total_tokens == 3
    assert llmrelay.Usage().cache_read_tokens is None


def test_http_request_repr_hides_credentials() -> None:
    from llmrelay import HttpRequest

    r = HttpRequest("POST", "https://x/v1", {"authorization": "Bearer sk-secret-123456789"}, b'{"k": 1}')
    assert "sk-secret" not in repr(r)
