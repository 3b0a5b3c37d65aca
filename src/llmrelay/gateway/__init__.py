"""The gateway: ``llmrelay serve`` speaks the OpenAI and Anthropic dialects (and our own routes) in front of any
configured model string, fallback chain or router. See ``gateway.app`` and ``gateway._hooks``."""
