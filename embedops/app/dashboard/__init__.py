"""The web dashboard of a store, served by ``embedops serve`` at ``/``: aliases, their timelines,
model lineage, indexes, guard reports with their plots, live shadow and canary comparisons, and
promote / rollback / canary abort behind a token.

* :mod:`.views`: what each page shows, read from the registry into typed records;
* :mod:`.charts`: inline SVG charts (no script, no CDN: it works on an air-gapped site);
* :mod:`.auth`: read-only unless ``EMBEDOPS_UI_TOKEN`` is set; sessions and CSRF tokens;
* :mod:`.routes`: the pages and actions (a FastAPI router).

>>> app.include_router(dashboard_router(registry, auth=UiAuth("s3cret")))   # doctest: +SKIP
"""

from embedops.app.dashboard.auth import TOKEN_ENV, UiAuth, WriteRefused
from embedops.app.dashboard.routes import dashboard_router

__all__ = ["TOKEN_ENV", "UiAuth", "WriteRefused", "dashboard_router"]
