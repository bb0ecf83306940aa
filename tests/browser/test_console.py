"""The operator's console at `/console` in a real browser against the real server: an
operator's key creates a key, tops it up and revokes it, and the media API then refuses the
revoked key; a plain key is told the console needs an operator's key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.viewports import VIEWPORT, fits_a_phone
from tests.support.servers import Darkroom

WAIT_MS = 30_000  # a bound for a hung test, not a measure


@pytest.fixture(scope="module")
def operator_key(web_server: Darkroom) -> str:
    return web_server.create_key("--name", "operator", "--admin")


def open_console(page: Page, key: str) -> None:
    page.goto("/console")
    page.get_by_test_id("admin-key").fill(key)
    page.get_by_role("button", name="Use key").click()


def test_the_console_creates_tops_up_and_revokes_a_key(
    page: Page, web_server: Darkroom, operator_key: str, screenshots: Path
):
    open_console(page, operator_key)
    page.get_by_test_id("new-name").fill("from the console")
    page.get_by_test_id("new-balance").fill("2")
    page.get_by_test_id("create-key").click()
    shown = page.get_by_test_id("new-key")
    expect(shown).to_contain_text("dk_", timeout=WAIT_MS)
    raw = shown.inner_text().strip()
    api = httpx.Client(base_url=web_server.base_url, headers={"Authorization": raw})
    assert api.get("/v1/balance").json()["balance"] == 2

    row = page.locator(f"[data-testid=key-row][data-prefix='{raw[:10]}']")
    expect(row.get_by_test_id("balance")).to_have_text("2")
    row.get_by_test_id("topup-amount").fill("3.5")
    row.get_by_test_id("topup").click()
    expect(row.get_by_test_id("balance")).to_have_text("5.5", timeout=WAIT_MS)
    assert api.get("/v1/balance").json()["balance"] == 5.5
    page.screenshot(path=screenshots / "console.png", full_page=True)
    assert fits_a_phone(page)
    page.screenshot(path=screenshots / "console-phone.png", full_page=True)
    page.set_viewport_size(VIEWPORT)

    row.get_by_test_id("revoke").click()
    expect(row.get_by_test_id("state")).to_have_text("revoked", timeout=WAIT_MS)
    expect(page.get_by_test_id("notice")).to_contain_text("revoked")
    refused = api.post("/v1/media/create", json={"model": "tiny-512", "prompt": "x"}).json()
    assert refused["code"] == 2
    api.close()


def test_a_plain_key_is_told_the_console_needs_an_operator_key(
    page: Page, web_server: Darkroom, screenshots: Path
):
    open_console(page, web_server.create_key("--name", "not-an-operator"))
    error = page.get_by_test_id("error")
    expect(error).to_contain_text("not an operator's key", timeout=WAIT_MS)
    page.screenshot(path=screenshots / "console-refused.png")
