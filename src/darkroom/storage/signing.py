"""Signed, expiring links for files served by Darkroom itself (HMAC-SHA256 over key and expiry)."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: bytes, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(secret: bytes, key: str, expires: str, signature: str, now: float | None = None) -> str:
    """'' when the link is good, else why it is refused ('invalid' or 'expired')."""
    if not expires.isdigit() or not hmac.compare_digest(sign(secret, key, int(expires)), signature):
        return "invalid"
    if int(expires) < (time.time() if now is None else now):
        return "expired"
    return ""
