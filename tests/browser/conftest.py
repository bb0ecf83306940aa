"""The browser tests' parts: the real server on a socket (the shared test catalog, one
in-process worker, SQLite), Debian's `chromium` driven by Playwright (never the browser
build Playwright downloads: it cannot be fetched here), and a page that fails its test on any
script error or Content-Security-Policy violation it reports.

Screenshots go to the session's output folder (pytest's basetemp, `screenshots/`); with
DARKROOM_UPDATE_SCREENSHOT=1 the playground's also replaces docs/screenshot.png, the one the
README shows."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.viewports import VIEWPORT
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom, running


# Package-scoped, not session-scoped: Playwright's sync API runs its own event loop on the main
# thread while it is open, and every later test that calls asyncio.run (or is async) would
# fail with "cannot be called from a running event loop".
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("no `chromium` on PATH: run scripts/test-services.sh", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    data_dir = tmp_path_factory.mktemp("web-server")
    with running(data_dir, CONFIGS / "test.toml") as server:
        yield server


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture
def page(browser: Browser, web_server: Darkroom) -> Iterator[Page]:
    """A fresh tab (its own session storage) on the server; its script errors fail the test."""
    context = browser.new_context(base_url=web_server.base_url, viewport=VIEWPORT)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    yield tab
    context.close()
    assert problems == []
