"""A real browser for the HTML the product writes (statements, scorecard): Playwright driving Debian's Chromium.

`make test` installs /usr/bin/chromium (scripts/ensure_debian_packages.sh); Playwright's own browser download is
never used, so nothing is fetched from the internet. Under scripts/test_clocks.sh libfaketime would be preloaded
into the driver and the browser (it hangs Chromium), so both start without it: the page they render was written
under the shifted clock, which is what those runs test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class OpenedPage:
    """A page loaded from a local file, with what its console and scripts reported while loading."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        """Keep a full-page screenshot under test-artifacts/ (CI keeps the folder) and return its path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextmanager
def _without_faketime() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k == "LD_PRELOAD" or k.startswith("FAKETIME")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


@contextmanager
def open_html(path: Path, *, width: int = 1280, height: int = 900) -> Iterator[OpenedPage]:
    """Open a local HTML file in headless Chromium at the given viewport and wait until it has loaded.

    Every request the page makes is recorded (a self-contained file makes none but its own `file://` load)."""
    with _without_faketime(), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = OpenedPage(page)
            page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: opened.page_errors.append(str(e)))
            page.on("request", lambda r: opened.requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield opened
        finally:
            browser.close()


def scrolls_sideways(page: Page) -> bool:
    """True when the document is wider than the viewport (a phone user would have to scroll sideways)."""
    return bool(page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"))
