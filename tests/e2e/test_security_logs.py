"""What a running `darkroom serve` writes down about a signed file link: the access log names
the path it served but never the link's signature, which is the whole of the capability."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.catalogs import CONFIGS
from tests.support.media import client_for
from tests.support.servers import running

WAIT = 120  # a bound for a hung test (seconds), never a measure


def test_the_access_log_names_a_fetched_link_without_its_signature(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml") as darkroom:
        with client_for(darkroom, darkroom.create_key("--name", "logs")) as client:
            task = client.post(
                "/v1/media/generate",
                json={"model": "google-imagen-3", "prompt": "a lighthouse"},
                timeout=WAIT,
            ).json()
        assert task["status"] == "done", task
        link = urlsplit(task["url"])
        signature = parse_qs(link.query)["sig"][0]
        assert httpx.get(task["url"], timeout=30).status_code == 200
        # A wrong signature in another case is redacted too: the log keeps no guess at one.
        tampered = f"{darkroom.base_url}{link.path}?expires=1&SIG=guessed-signature"
        assert httpx.get(tampered, timeout=30).status_code == 403
    log = darkroom.logs()
    assert f"GET {link.path}?expires=" in log
    assert "sig=REDACTED" in log
    assert "SIG=REDACTED" in log
    assert signature not in log
    assert "guessed-signature" not in log
