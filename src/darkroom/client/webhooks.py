"""Checking that a webhook came from Darkroom, as the Standard Webhooks spec has it.

Darkroom signs each delivery with the key's `whsec_` secret (shown when the key is made, or by
`darkroom keys webhook-secret`): `webhook-signature` is `v1,` and the base64 HMAC-SHA256 of
`{webhook-id}.{webhook-timestamp}.{body}`, keyed by the secret's base64-decoded part. A
receiver checks it against the body exactly as it arrived, before parsing it:

    from darkroom.client.webhooks import verify

    task = verify(secret, request.headers, request.body)  # raises WebhookVerificationError

`webhook-id` is the same on every retry of a delivery, so a receiver that has seen it can
answer 2xx and do nothing more. The signature is computed by webhooks/signing.py, the one
implementation the server signs with too.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from darkroom.errors import DarkroomError
from darkroom.webhooks.signing import BadSecret, sign

DEFAULT_TOLERANCE_SECONDS = 300.0  # the spec's five minutes, either way

__all__ = ["WebhookVerificationError", "verify"]


class WebhookVerificationError(DarkroomError):
    """The request is not a webhook this secret signed, or it was signed too long ago."""


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> Any:
    """The parsed JSON body, once one of its v1 signatures matches and its timestamp is within
    `tolerance` seconds of now; raises WebhookVerificationError otherwise."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError(
            "The request lacks a webhook-id, webhook-timestamp or webhook-signature header."
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("The webhook-timestamp header is not a number.") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"The webhook's timestamp is more than {tolerance:g} seconds from now."
        )
    try:
        expected = sign(secret, msg_id, timestamp, body).encode()
    except BadSecret as exc:
        raise WebhookVerificationError(f"The secret cannot be used: {exc}.") from None
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return json.loads(body)
    raise WebhookVerificationError("No signature of the webhook matches this secret.")
