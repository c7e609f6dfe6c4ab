"""Headless Chromium for the dashboard's browser test and scripts/dashboard_screenshots.py (Playwright driving
Debian's ``chromium``, no browser download).

The flags are the ones this project's machines need: no sandbox as root, and no background
networking (a closed network refuses Chromium's many calls home at every start).

>>> with chromium() as browser:                                 # doctest: +SKIP
...     browser.new_page().goto("http://127.0.0.1:8000/")
"""

from __future__ import annotations

import contextlib
import os
import shutil

CHROMIUM_FLAGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium executable: ``$EMBEDOPS_CHROMIUM``, else ``chromium`` on the PATH."""
    return os.environ.get("EMBEDOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser cannot start here (None when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs playwright (pip install playwright; it is in the dev extra)"
    if chromium_path() is None:
        return "needs Chromium (apt-get install chromium; .ci/run installs it)"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium browser (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
