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
    # ASCII digits of a sane length only: int() accepts other digits ("²") and refuses very
    # long ones, and compare_digest refuses non-ASCII text.
    well_formed = expires.isascii() and expires.isdigit() and len(expires) <= 12
    if not (well_formed and signature.isascii()):
        return "invalid"
    if not hmac.compare_digest(sign(secret, key, int(expires)), signature):
        return "invalid"
    if int(expires) < (time.time() if now is None else now):
        return "expired"
    return ""
