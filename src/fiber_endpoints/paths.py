"""Where things live: the project's files, and the per-user cache of installed tools.

Tools built by the project's scripts (Jaeger, vegeta) are cached outside the checkout, so a
fresh clone on the same machine (CI) reuses them instead of building them again.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(
    os.environ.get("FIBER_ENDPOINTS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fiber-endpoints"
)
