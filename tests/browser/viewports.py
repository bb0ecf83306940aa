"""The sizes the pages are looked at in: a desk's window and a phone's."""

from __future__ import annotations

from playwright.sync_api import Page

VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def fits_a_phone(page: Page) -> bool:
    """At a phone's width the page scrolls only down, never sideways (wide tables scroll in
    their own box)."""
    page.set_viewport_size(PHONE)
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return bool(fits)
