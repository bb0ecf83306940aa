"""What a callback URL must be to be accepted: an http(s) URL with a host, of bounded length,
without spaces or control characters. Whether its address is public is judged when it is
posted to (the guarded fetcher resolves it then), since a name may resolve elsewhere later."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_CALLBACK_URL = 2000  # what browsers and proxies commonly carry


def callback_problem(url: str) -> str | None:
    """Why `url` cannot be a callback URL, in a sentence; None when it can."""
    if len(url) > MAX_CALLBACK_URL:
        return f"callback_url must be at most {MAX_CALLBACK_URL} characters long"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "callback_url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        usable = False
    if not usable:
        return f"callback_url must be an http(s) URL with a host; got {url[:100]!r}"
    return None
