"""The routes beside the API on a running `darkroom serve`: /metrics behind
DARKROOM_METRICS_TOKEN when it is set, open when not; /docs, /redoc and /openapi.json open by
default and gone with DARKROOM_PUBLIC_DOCS=0."""

from __future__ import annotations

import httpx
import pytest

from tests.support.servers import running

TOKEN = "metrics-token-for-the-tests-0123456789"
DOCS = ["/docs", "/redoc", "/openapi.json"]


def get(base_url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{base_url}{path}", headers=headers, timeout=30)


def test_metrics_with_a_token_set_answer_only_that_bearer_token(tmp_path):
    with running(tmp_path, None, "--workers", "0", metrics_token=TOKEN) as darkroom:
        refused = [
            get(darkroom.base_url, "/metrics"),
            get(darkroom.base_url, "/metrics", authorization="Bearer wrong-token"),
            get(darkroom.base_url, "/metrics", authorization=TOKEN),  # no scheme
            get(darkroom.base_url, "/metrics", authorization=f"Basic {TOKEN}"),
        ]
        allowed = get(darkroom.base_url, "/metrics", authorization=f"Bearer {TOKEN}")
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert all(r.headers["www-authenticate"] == "Bearer" for r in refused)
    assert all("darkroom_" not in r.text for r in refused)
    assert allowed.status_code == 200
    assert "darkroom_" in allowed.text


def test_metrics_without_a_token_stay_open(tmp_path):
    with running(tmp_path, None, "--workers", "0") as darkroom:
        answer = get(darkroom.base_url, "/metrics")
    assert answer.status_code == 200
    assert "darkroom_" in answer.text


@pytest.mark.parametrize(("public_docs", "status"), [("1", 200), ("0", 404)])
def test_the_docs_follow_the_public_docs_setting(tmp_path, public_docs, status):
    with running(tmp_path, None, "--workers", "0", public_docs=public_docs) as darkroom:
        answers = [get(darkroom.base_url, path).status_code for path in DOCS]
        api = get(darkroom.base_url, "/v1/media/models")
    assert answers == [status] * len(DOCS)
    assert api.status_code == 200  # the API itself is untouched (code 2 without a key)
