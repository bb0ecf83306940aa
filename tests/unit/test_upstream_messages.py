"""Provider error text shown to users never carries a credential and stays short."""

from __future__ import annotations

from darkroom.engines.upstream.calls import MAX_MESSAGE_CHARS, http_failure, scrub


def test_known_secrets_and_secret_shapes_are_removed():
    text = (
        "Incorrect API key provided: sk-proj-abcdef123456. Header was Bearer ya29.a0AfH6 and "
        "url ?key=AIzaSyDUMMYDUMMYDUMMY; also my-own-relay-key"
    )
    cleaned = scrub(text, ["my-own-relay-key"])
    for secret in ("sk-proj", "ya29", "AIza", "my-own-relay-key"):
        assert secret not in cleaned
    assert "Incorrect API key provided" in cleaned


def test_long_text_is_cut():
    assert len(scrub("word " * 500)) == MAX_MESSAGE_CHARS


def test_statuses_decide_what_is_retried():
    assert http_failure("P", 429, None, []).retryable
    assert http_failure("P", 503, None, []).retryable
    for status in (400, 401, 403, 404, 422):
        assert not http_failure("P", status, "detail", []).retryable
    assert "operator" in http_failure("P", 401, None, []).message
