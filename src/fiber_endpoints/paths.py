"""Where things live: the project's files, and the per-user cache of installed tools.

Tools built by the project's scripts (Jaeger, vegeta) are cached outside the checkout, so a
fresh clone on the same machine (CI) reuses them instead of building them again.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "FIBER_ENDPOINTS_CACHE"


def cache_dir() -> Path:
    """``$FIBER_ENDPOINTS_CACHE``, else ``$XDG_CACHE_HOME/fiber-endpoints``, else ``~/.cache/...``
    (read when called, so a container or a test can point it elsewhere)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "fiber-endpoints"


CACHE_DIR = cache_dir()
