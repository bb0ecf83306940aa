"""A short-lived cache of authenticated keys, so that a request does not read the key table.

Every request presents its key; reading the key row costs a database round trip that a busy
server pays thousands of times a second for the same few keys. A found key is kept for
`seconds` (1 by default, DARKROOM_KEY_CACHE_SECONDS; 0 turns the cache off), so:
- a key revoked, topped up or changed through this process is forgotten at once (the key store
  calls `forget` after its write commits);
- one changed by another process or node (the `darkroom keys` command, another API node) is seen
  within `seconds`.
What the cache may serve stale is the key's record only: charges stay one compare-and-set on
the balance in the database (keys/balance.py), and the balance route reads the key afresh.
Unknown keys are not cached, so a key created elsewhere works at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from darkroom.keys.store import ApiKey

# Enough for every live key of a large server; past it the cache starts over rather than
# growing with whatever a client invents.
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, ApiKey]] = {}

    def get(self, key_hash: str) -> ApiKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        expires, key = entry
        if time.monotonic() >= expires:
            del self._entries[key_hash]
            return None
        return key

    def put(self, key_hash: str, key: ApiKey) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.seconds, key)

    def forget(self, key_id: int | None = None) -> None:
        """Drops one key's entry (all entries when no id is given)."""
        if key_id is None:
            self._entries.clear()
            return
        for key_hash in [h for h, (_, key) in self._entries.items() if key.id == key_id]:
            del self._entries[key_hash]
