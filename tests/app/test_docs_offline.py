"""/docs and /redoc work on an air-gapped site: in a real browser whose every request off loopback
is cut, Swagger UI and ReDoc load from the package's own files and show the API."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from browser import chromium, missing
from conftest import running_app

from embedops.app.server import create_app

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=missing() or "")]


def test_docs_and_redoc_render_with_the_network_cut(reg):
    with running_app(create_app(reg)) as http, chromium() as browser:
        base = str(http.base_url).rstrip("/")
        page = browser.new_page()
        outside: list[str] = []

        def loopback_only(route):
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        page.route("**/*", loopback_only)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        assert page.goto(base + "/docs").ok
        page.wait_for_selector('[data-path="/v1/embeddings"]', timeout=20_000)  # Swagger UI drew the operations
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("embedops")
        assert page.goto(base + "/redoc").ok
        page.wait_for_selector("text=Embed texts (OpenAI-compatible)", timeout=20_000)
        # nothing but ReDoc's "powered by" footer image (an <img> its bundle points at cdn.redoc.ly) is
        # asked of the outside, and the page works without it
        assert [u for u in outside if not u.endswith("/redoc/logo-mini.svg")] == [] and errors == []
        html = http.get("/docs").text
        assert "cdn." not in html and "/static-offline-docs/swagger-ui-bundle.js" in html
        metrics = http.get("/metrics").text
        assert 'embedops_requests_total{endpoint="docs",status="200"}' in metrics
