"""The Standard Webhooks signature, written once: the server signs with it (webhooks/sender.py)
and the client's `verify` checks with it (client/webhooks.py); tests check both against the
spec's reference implementation (tests/unit/test_webhook_signing.py).

`webhook-signature` is `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.
{body}`, keyed by the base64-decoded part of the key's `whsec_` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


class BadSecret(ValueError):
    """The secret is not `whsec_` followed by base64."""


def new_secret() -> str:
    """A fresh secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value for this message: `v1,<base64 signature>`."""
    data = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + data
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (its prefix is optional, as in the reference)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("the secret is not a whsec_ secret in base64") from None
    if not key:
        raise BadSecret("the secret is empty")
    return key
