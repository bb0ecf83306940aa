"""The `Idempotency-Key` header of create and generate (an extension, as Stripe and OpenAI's
peers spell it): a client that retries a create whose answer it never got sends the same key
and body, and gets the same task instead of a second one (tasks/admission.py keeps the record
for a day)."""

from __future__ import annotations

import hashlib
import re

from fastapi import Request
from pydantic import BaseModel

from darkroom.api.issues import custom, invalid
from darkroom.tasks import Idempotency

HEADER = "Idempotency-Key"
# Printable ASCII, as a header value can carry it, and short enough to index.
_VALID = re.compile(r"[\x21-\x7e]{1,255}")


def requested_idempotency(request: Request, body: BaseModel) -> Idempotency | None:
    """The request's idempotency key with the hash of its parsed body; None without the
    header; code 3 for a key that is empty, too long or not printable ASCII."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not _VALID.fullmatch(raw.strip()):
        message = f"The {HEADER} header must be 1 to 255 printable ASCII characters."
        raise invalid([custom([HEADER], message)])
    digest = hashlib.sha256(f"{request.url.path}\n{body.model_dump_json()}".encode())
    return Idempotency(raw.strip(), digest.hexdigest())
