from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from llmrelay.testing import FakeUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No provider keys or URLs from the developer's environment leak into a test."""
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) or var in ("OLLAMA_HOST", "LLMRELAY_CONFIG"):
            monkeypatch.delenv(var, raising=False)
    yield
