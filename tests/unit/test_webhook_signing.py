"""Darkroom's webhook signatures against the Standard Webhooks reference implementation (the
`standardwebhooks` package): what Darkroom signs the reference verifies, what the reference
signs the client's `verify` accepts, and `verify` refuses a changed body, another secret, a
stale timestamp and missing headers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from darkroom.client.webhooks import WebhookVerificationError, verify
from darkroom.webhooks.signing import new_secret, sign

BODY = json.dumps({"code": 0, "id": "6880f043e6060500018821de", "status": "done"})


def headers(secret: str, body: str = BODY, msg_id: str = "msg_1", at: int | None = None):
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def test_the_reference_verifies_what_darkroom_signs():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(BODY, headers(secret)) == json.loads(BODY)


def test_verify_accepts_what_the_reference_signs():
    secret = new_secret()
    now = int(time.time())
    signature = Webhook(secret).sign("msg_2", datetime.fromtimestamp(now, tz=UTC), BODY)
    sent = {"Webhook-Id": "msg_2", "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    assert verify(secret, sent, BODY.encode()) == json.loads(BODY)


def test_any_one_of_several_signatures_may_match():
    secret = new_secret()
    sent = headers(secret)
    sent["webhook-signature"] = f"v1,c29tZXRoaW5nIGVsc2U= {sent['webhook-signature']}"
    assert verify(secret, sent, BODY)["status"] == "done"


@pytest.mark.parametrize(
    "change",
    ["body", "secret", "id", "stale", "future", "missing"],
)
def test_verify_refuses(change):
    secret = new_secret()
    sent, body = headers(secret), BODY
    if change == "body":
        body = BODY.replace("done", "failed")
    elif change == "secret":
        secret = new_secret()
    elif change == "id":
        sent["webhook-id"] = "msg_other"
    elif change in ("stale", "future"):
        shift = -600 if change == "stale" else 600
        sent = headers(secret, at=int(time.time()) + shift)
    else:
        del sent["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        verify(secret, sent, body, tolerance=300)
    if change != "missing":  # the reference refuses it too
        with pytest.raises(Exception, match="signature|too old|too new"):
            Webhook(secret).verify(body, sent)
