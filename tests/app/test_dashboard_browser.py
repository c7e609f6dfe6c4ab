"""The dashboard in a real browser: headless Chromium (Playwright) against `embedops serve`'s app on
loopback. Every page opens without a script error, shows the registry's numbers, stays usable on a
phone-width window; a signed-in person rolls production back and re-promotes it through the UI;
a write without the token is refused."""

from __future__ import annotations

import pytest
from browser import chromium, missing
from conftest import running_app

from embedops.app.server import ServeSettings, create_app

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=missing() or "")]
TOKEN = "browser-test-token"


def test_every_page_then_rollback_and_repromote_through_the_ui(dashboard_store, tmp_path):
    s, report = dashboard_store.live, dashboard_store.report
    app = create_app(s.reg, ServeSettings(check_interval=0.2), ui_token=TOKEN)
    with running_app(app) as http, chromium() as browser:
        base = str(http.base_url).rstrip("/")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        for path, heading in [("/", "Overview"), ("/ui/aliases", "Aliases"), ("/ui/aliases/production", "production"),
                              ("/ui/models", "Models"), ("/ui/models/tiny@2", "tiny@2"), ("/ui/indexes", "Indexes"),
                              ("/ui/reports", "Guard reports"), (f"/ui/reports/{report.report_id}", report.report_id),
                              ("/ui/live", "Shadow and canary")]:
            response = page.goto(base + path)
            assert response.ok, (path, response.status)
            assert heading in page.locator("h1").inner_text(), path
        assert errors == []

        page.goto(base + "/")
        card = page.locator('section.card[data-alias="production"]')
        assert card.locator('[data-field="index"]').inner_text() == s.reg.aliases.current("production") == s.b.index_id
        assert card.locator('[data-field="model"]').inner_text() == s.b.model_ref
        page.screenshot(path=str(tmp_path / "overview-1280.png"), full_page=True)
        page.goto(base + f"/ui/reports/{report.report_id}")
        assert page.locator("svg.chart").count() == 4  # recall@k, per-query change, slices, general
        assert page.locator("#verdict").inner_text() == "PASS"
        assert page.locator("#slices tr").count() == 3 and page.locator('tr[data-slice="cluster 2 ~ q7"]').is_visible()
        page.screenshot(path=str(tmp_path / "report-1280.png"), full_page=True)

        # sign in, roll back from the overview, re-promote from the indexes page
        page.goto(base + "/ui/login")
        page.fill("#token", TOKEN)
        page.click("#sign-in")
        page.wait_for_url(base + "/")
        page.click('section.card[data-alias="production"] >> text=Roll back…')
        assert f"point at {s.a.index_id} instead of {s.b.index_id}" in page.locator("#change").inner_text()
        page.click("#confirm")
        assert f"production now points at {s.a.index_id}" in page.locator("#message").inner_text()
        head = s.reg.aliases.get("production")
        assert head.value == s.a.index_id and head.action == "rollback" and head.actor.startswith("dashboard (")

        page.goto(base + "/ui/indexes")
        page.click(f'tr[data-index="{s.b.index_id}"] >> text=Promote…')
        page.click("#confirm")
        assert f"production now points at {s.b.index_id}" in page.locator("#message").inner_text()
        head = s.reg.aliases.get("production")
        assert head.value == s.b.index_id and head.report_id == report.report_id and not head.override
        history = page.goto(base + "/ui/aliases/production")
        assert history.ok and page.locator("#timeline tr[data-seq]").count() == len(s.reg.aliases.history("production"))

        # a write from a browser without the session is refused and changes nothing
        stranger = browser.new_context()
        r = stranger.request.post(base + "/ui/actions/rollback", form={"alias": "production"})
        assert r.status == 401  # not signed in
        assert s.reg.aliases.current("production") == s.b.index_id
        stranger.close()

        # a phone-width window: nothing wider than the screen but the tables' own scroll boxes
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        for path in ["/", "/ui/indexes", f"/ui/reports/{report.report_id}", "/ui/models", "/ui/aliases/production"]:
            phone.goto(base + path)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        phone.goto(base + "/")
        phone.screenshot(path=str(tmp_path / "overview-390.png"), full_page=True)
        assert errors == []
    shots = ("overview-1280.png", "report-1280.png", "overview-390.png")
    assert all((tmp_path / n).stat().st_size > 5000 for n in shots)
