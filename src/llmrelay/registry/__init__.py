"""Provider registry, factory and model strings.

A model string is ``PROVIDER/MODEL`` (``openai/gpt-4o-mini``, ``groq/llama-3.3-70b-versatile``,
``local/smollm2``); the model part may itself contain slashes (``openrouter/meta-llama/llama-3.3-70b``).
``PROVIDER`` alone means that provider's default model, and an alias from ``[aliases]`` stands for the
model string it names. ``ProviderRegistry.resolve`` turns a string into a ``ModelRef``; ``get`` builds
(once) the ``Provider`` for it.

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
entry becomes a ``Provider``), ``_resolve`` (model strings, aliases, the default model) and ``_registry``
(``ProviderRegistry``). Everything public is importable from ``llmrelay.registry``.
"""

from __future__ import annotations

# The private names imported "as" themselves (``_row``, ``LOCAL_DEFAULT``, ...) stay importable from here
# for the tests and older imports; they are not part of ``__all__``.
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
    "register_provider_type",
]
