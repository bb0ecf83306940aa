"""Keys changed by another process: a server sees them within its key cache's lifetime
(DARKROOM_KEY_CACHE_SECONDS, 1 s by default; keys/cache.py), so a test of a revocation made
with the `darkroom keys` command waits that long for it, and no longer."""

from __future__ import annotations

import time
from collections.abc import Callable

from darkroom.config import Settings

# The server's bound, and room for a loaded test machine to answer the request itself.
CACHE_SECONDS = Settings.model_fields["key_cache_seconds"].default
MARGIN_SECONDS = 2.0


def within_key_cache(check: Callable[[], bool], what: str) -> None:
    """Asserts that `check()` turns true within the cache's lifetime (plus a margin)."""
    deadline = time.monotonic() + CACHE_SECONDS + MARGIN_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"{what} was not seen within the key cache's bound"
        time.sleep(0.05)
