"""Headless Chromium driven by Playwright, for the tests that use the UI as a person does: open a
page, click, type into a field, wait for text, take a screenshot.

Playwright's own browser download is out of reach, so it drives Debian's chromium (`make browser`
installs it) through ``executable_path``; without it the test fails, it is not skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import REPO

SCREENSHOTS = REPO / "test-output" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars"]
WAIT_MS = 60_000  # the longest a page may take to show what a step waits for, on a busy machine


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is missing: `make browser` installs Debian's chromium (apt-get)")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium; each ``new_page`` is a fresh profile (no saved logins)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    """A tab in a fresh browser context, 1400 pixels wide, whose steps wait up to ``WAIT_MS``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def shows(page: Page, *texts: str, timeout: float = WAIT_MS) -> None:
    """Wait until the page shows every one of ``texts``; fail with what it shows instead."""
    for text in texts:
        expect(page.locator("body")).to_contain_text(text, timeout=timeout)


def screenshot(page: Page, name: str) -> str:
    """Save the whole page as test-output/screenshots/<name>.png; returns the rendered DOM."""
    path = SCREENSHOTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000, f"{path} is nearly blank"
    return page.content()
