"""Screenshots of the dashboard for docs/ (run: .venv/bin/python scripts/dashboard_screenshots.py
./embedops-demo docs/img). Serves the store's dashboard on loopback, read-only, and saves the
overview, an alias timeline, models, indexes, the newest guard report and live comparisons, full
page, at 1280x800 and at phone width (390x844). Needs playwright and Chromium (apt-get install
chromium)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS / "app"), str(TESTS)]

from browser import chromium, missing  # noqa: E402
from conftest import running_app  # noqa: E402  (tests/app/conftest.py: a uvicorn server in a thread)

from embedops.app.server import ServeSettings, create_app  # noqa: E402
from embedops.registry import Registry  # noqa: E402
from embedops.store import Store  # noqa: E402


def main(store: str, out: str) -> None:
    if missing():
        sys.exit(missing())
    reg = Registry(Store.open(store, create=False))
    report = max(reg.reports.list(), key=lambda r: r.created_at)
    pages = {"overview": "/", "alias": "/ui/aliases/production", "models": "/ui/models", "indexes": "/ui/indexes",
             "report": f"/ui/reports/{report.report_id}", "live": "/ui/live?since=7d"}
    Path(out).mkdir(parents=True, exist_ok=True)
    with running_app(create_app(reg, ServeSettings(compact_interval=0))) as http, chromium() as browser:
        base = str(http.base_url).rstrip("/")
        for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
            page = browser.new_page(viewport={"width": width, "height": height})
            for name, path in pages.items():
                page.goto(base + path)
                dest = Path(out) / f"dashboard-{name}{suffix}.png"
                page.screenshot(path=str(dest), full_page=True)
                print(dest)
            page.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
