"""Provider registry, factory and model strings.

A model string is ``PROVIDER/MODEL`` (``openai/gpt-4o-mini``, ``groq/llama-3.3-70b-versatile``,
``local/smollm2``); the model part may itself contain slashes (``openrouter/meta-llama/llama-3.3-70b``).
``PROVIDER`` alone means that provider's default model, and an alias from ``[aliases]`` stands for the
model string it names, and a ``[fallbacks]`` name for its chain. ``ProviderRegistry.resolve`` turns a
string into a ``ModelRef``.

Two ways to get a provider, on purpose:

- ``registry.provider(model_string)``: what a call through the configuration uses (the CLI,
  ``llmrelay.chat*``): the **wrapper stack** the configuration describes. For one model that is
  ``Retrying(bare, max_attempts=3)`` (two retries of retryable errors; ``[retry]`` changes the policy and
  ``max_attempts = 1`` leaves the bare provider); for a fallback name, ``Fallback`` over its members' own
  stacks, each bound to its own model. Its ``name`` and ``model`` are the bare provider's (the fallback's
  name and first model for a chain), ``capabilities()`` and ``profile()`` are forwarded, and who answered
  is on the reply and the stream (``provider``, ``model``, ``attempts``).
- ``registry.get(name, model)``: the **bare provider** (``OpenAIProvider``, ``OllamaProvider``, ...),
  built once per (name, model) and shared by every stack over it; use it when you need the class or its
  attributes (``base_url``, ``timeouts``). From a model string:
  ``ref = registry.resolve(s); registry.get(ref.provider, ref.model)``. A stack's wrapper also exposes
  what it wraps: ``Retrying.inner``, ``Fallback.candidates``.

Where a provider name is looked up, first match wins:

1. providers registered in code (``registry.register(name, provider_or_factory)``);
2. ``[providers.NAME]`` tables in the configuration;
3. endpoint rows (``llmrelay.endpoints``: ``openai``, ``groq``, ``anthropic``, ...), configured entirely
   by the environment variables the ecosystem already uses (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
   ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``OLLAMA_HOST``, ``AZURE_OPENAI_*``, and
   each row's own);
4. provider types: the wire dialects, ``local`` (the embedded GGUF model) and plugin types.

Plugins: a package adds provider types through the entry-point group ``llmrelay.providers`` (name ->
``module:Class``; the class takes the keyword arguments ``name``, ``model`` and, when configured,
``base_url``, ``api_key``, ``api_key_env``, ``headers``, ``timeouts``, ``transport`` and the entry's
``settings``), and endpoint rows through ``llmrelay.endpoints`` (name -> an ``Endpoint``, an iterable of
them, or a function returning either). Plugins are discovered lazily, the first time a name is not found
among the built-in ones or everything is listed; a broken plugin is a warning, never a crash.

The default model, when a call names none: ``default`` from the configuration; else the first configured
provider with a ``default_model``; else the first provider whose key is in the environment (see
``ENV_DEFAULTS``); else the embedded local model ``local/smollm2``.

Modules, one concern each: ``_plugins`` (provider types, entry points), ``_factory`` (a configuration
entry becomes a ``Provider``), ``_resolve`` (model strings, aliases, fallback names, the default model),
``_stacks`` (wrapper stacks from configuration) and ``_registry`` (``ProviderRegistry``). Everything
public is importable from ``llmrelay.registry``.
"""

from __future__ import annotations

# The names imported "as" themselves (``_row``, ``LOCAL_DEFAULT``, ``build_stack``, ...) stay importable
# from here for the tests and older imports; they are not part of ``__all__``.
from ._factory import build_provider, configured_entries
from ._plugins import _CALLABLE_TYPES as _CALLABLE_TYPES
from ._plugins import _TYPES as _TYPES
from ._plugins import ENDPOINTS_GROUP, PROVIDERS_GROUP, known_types, load_plugins, register_provider_type
from ._plugins import _row as _row
from ._registry import ProviderRegistry
from ._registry import RegisteredProvider as RegisteredProvider
from ._resolve import ENV_DEFAULTS, ModelRef
from ._resolve import LOCAL_DEFAULT as LOCAL_DEFAULT
from ._resolve import Source as Source
from ._resources import price_overrides
from ._stacks import build_stack as build_stack
from ._stacks import with_retry as with_retry

__all__ = [
    "ENV_DEFAULTS",
    "PROVIDERS_GROUP",
    "ENDPOINTS_GROUP",
    "ModelRef",
    "ProviderRegistry",
    "build_provider",
    "configured_entries",
    "known_types",
    "load_plugins",
    "price_overrides",
    "register_provider_type",
]
