"""Task ids: 12-byte ObjectIds written as 24 lowercase hex characters.

Layout (as the hosted service's ids): 4 bytes of big-endian unix seconds, 5 random bytes, and a
3-byte counter. The random part is drawn afresh for every id (MongoDB draws it once per process),
so that ids are not guessable from one another; the counter keeps ids from one process distinct
even if the random draw repeats within a second.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time

_counter = itertools.count(secrets.randbelow(1 << 24))
_lock = threading.Lock()

# Matched whole (fullmatch): `$` would also let a trailing newline through.
TASK_ID_PATTERN = re.compile(r"[0-9a-f]{24}")


def new_task_id(now: float | None = None) -> str:
    seconds = int(time.time() if now is None else now)
    with _lock:
        count = next(_counter) & 0xFFFFFF
    raw = seconds.to_bytes(4, "big") + secrets.token_bytes(5) + count.to_bytes(3, "big")
    return raw.hex()


def created_at_of(task_id: str) -> int:
    """The unix seconds stamped in the first four bytes of an id."""
    return int(task_id[:8], 16)


def is_task_id(value: str) -> bool:
    return TASK_ID_PATTERN.fullmatch(value) is not None
