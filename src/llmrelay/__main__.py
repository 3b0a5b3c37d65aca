"""``python -m llmrelay``: the same as the ``llmrelay`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
