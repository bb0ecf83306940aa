"""The playground and the gallery at `/` in a real browser against the real server: a person
pastes a key, creates, watches the task and sees the image; the gallery lists it newest first
with its cost and seed and runs it again; a wrong key is refused in plain words; the key stays
out of URLs, cookies and the server's logs; the page carries its security headers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.viewports import VIEWPORT, fits_a_phone
from tests.support.servers import Darkroom

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000  # a bound for a hung test, not a measure
SEED = 7


@pytest.fixture(scope="module")
def user_key(web_server: Darkroom) -> str:
    return web_server.create_key("--name", "web", "--balance", "10")


def use_key(page: Page, key: str) -> None:
    page.goto("/")
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("key-form").get_by_role("button", name="Use key").click()


def test_create_from_the_playground_shows_the_image_and_the_gallery_lists_it(
    page: Page, web_server: Darkroom, user_key: str, screenshots: Path
):
    use_key(page, user_key)
    page.get_by_test_id("model").select_option("tiny-512")
    page.get_by_test_id("ratio").select_option("16:9")
    page.get_by_test_id("seed").fill(str(SEED))
    page.get_by_test_id("prompt").fill("a lighthouse at dusk")
    page.get_by_test_id("create").click()

    image = page.get_by_test_id("result-image")
    expect(image).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("status")).to_have_text("Done.")
    assert "/files/" in (image.get_attribute("src") or "")
    # The image loaded: the browser decoded it at the ratio asked for.
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > height > 0

    gallery = page.get_by_test_id("gallery-item")
    expect(gallery.first).to_contain_text("a lighthouse at dusk", timeout=WAIT_MS)
    expect(gallery.first).to_contain_text("tiny-512 · cost 0")
    expect(gallery.first).to_contain_text("done")
    page.screenshot(path=screenshots / "playground.png", full_page=True)
    if os.environ.get("DARKROOM_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshots / "playground.png", ROOT / "docs" / "screenshot.png")

    assert fits_a_phone(page)
    page.screenshot(path=screenshots / "playground-phone.png", full_page=True)
    page.set_viewport_size(VIEWPORT)

    gallery.first.click()
    expect(page.get_by_test_id("detail-seed")).to_have_text(str(SEED))
    page.screenshot(path=screenshots / "gallery-detail.png")
    page.get_by_test_id("run-again").click()
    expect(page.get_by_test_id("seed")).to_have_value(str(SEED))
    expect(page.get_by_test_id("prompt")).to_have_value("a lighthouse at dusk")
    expect(page.get_by_test_id("ratio")).to_have_value("16:9")

    # The key went only into the tab's session storage and the Authorization header.
    assert user_key not in page.url
    assert page.context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('darkroom.key')") == user_key
    assert user_key not in web_server.logs()


def test_the_gallery_pages_through_the_tasks_newest_first(
    page: Page, web_server: Darkroom, screenshots: Path
):
    key = web_server.create_key("--name", "pages")
    prompts = [f"picture {n}" for n in range(14)]  # more than one page of 12
    with httpx.Client(base_url=web_server.base_url, headers={"Authorization": key}) as client:
        for prompt in prompts:
            body = {"model": "tiny-512", "prompt": prompt}
            assert client.post("/v1/media/create", json=body).json()["code"] == 0
    use_key(page, key)
    tiles = page.get_by_test_id("gallery-item")
    expect(tiles).to_have_count(12, timeout=WAIT_MS)
    expect(tiles.first).to_contain_text("picture 13")
    page.get_by_role("button", name="Older").click()
    expect(tiles).to_have_count(2)
    expect(tiles.first).to_contain_text("picture 1")
    expect(tiles.last).to_contain_text("picture 0")
    page.get_by_role("button", name="Newer").click()
    expect(tiles.first).to_contain_text("picture 13")
    page.get_by_test_id("gallery").screenshot(path=screenshots / "gallery.png")


def test_a_wrong_key_shows_the_error_in_plain_words(page: Page, screenshots: Path):
    use_key(page, "dk_this-key-does-not-exist-000000000000000")
    error = page.get_by_test_id("error")
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).to_contain_text("This key was not accepted")
    expect(page.get_by_test_id("create-form")).to_be_hidden()
    page.screenshot(path=screenshots / "wrong-key.png")


def test_the_pages_carry_their_security_headers(web_server: Darkroom):
    for path in ("/", "/console", "/static/darkroom.js"):
        headers = httpx.get(web_server.base_url + path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
