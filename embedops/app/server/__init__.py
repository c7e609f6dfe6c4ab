"""``embedops serve``: an HTTP search and embedding service (FastAPI on uvicorn) over the indexes
behind aliases, with canary splits, live shadow traffic and automatic rollback.

* :mod:`.app`: :func:`create_app`, the composition of the routers below over one
  :class:`~.state.ServerState` (what they share; :mod:`.settings` is how the server runs);
* :mod:`.search_api`, :mod:`.openai_api`, :mod:`.health`: one router per concern (search, OpenAI
  embeddings and models, health and metrics); the dashboard's is :mod:`embedops.app.dashboard`;
* :mod:`.batching`: concurrent requests' texts encoded together, one model call per batch;
* :mod:`.background`: the loop that follows aliases and judges canaries and watched promotions;
* :mod:`.follower`: which opened indexes each alias is served from, switched only once open;
* :mod:`.mirror`: live queries run again on a second index off the request path, recorded;
* :mod:`.signals`: windows of live signals (requests, errors, latency, agreement);
* :mod:`.rollback`: the ``[serve.rollback]`` policy and its judgement;
* :mod:`.metrics`: the Prometheus metrics.

Every alias switch the server makes by itself goes through the registry's audited compare-and-swap
(:meth:`embedops.registry.Registry.abort_canary`, :meth:`~embedops.registry.Registry.rollback`), as
a person's command does; several servers on one store agree because the alias log is the only
source of truth.

>>> app = create_app(Registry(Store.open("./embedops-store")))     # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                  # doctest: +SKIP
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
from dataclasses import asdict

from embedops.app.dashboard import TOKEN_ENV
from embedops.app.server.app import create_app
from embedops.app.server.settings import ServeSettings
from embedops.app.server.follower import AliasFollower, AliasView, canary_bucket
from embedops.app.server.rollback import RollbackPolicy, load_rollback_policy

__all__ = ["AliasFollower", "AliasView", "RollbackPolicy", "ServeSettings", "app_from_env", "canary_bucket",
           "create_app", "load_rollback_policy", "settings_to_env"]

SETTINGS_ENV = "EMBEDOPS_SERVE_SETTINGS"


def settings_to_env(settings: ServeSettings) -> str:
    """``settings`` as the JSON ``--workers`` processes read from ``$EMBEDOPS_SERVE_SETTINGS``."""
    return json.dumps(asdict(settings))


def app_from_env():
    """The app for ``uvicorn --factory`` worker processes: store from ``$EMBEDOPS_STORE``, settings
    from ``$EMBEDOPS_SERVE_SETTINGS`` (JSON, see :func:`settings_to_env`)."""
    from embedops.registry import Registry
    from embedops.store import Store, resolve_store_uri

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # as `embedops serve` does for one process
    data = json.loads(os.environ.get(SETTINGS_ENV) or "{}")
    rollback = RollbackPolicy(**data.pop("rollback", {}))
    return create_app(Registry(Store.open(resolve_store_uri(None), create=False)),
                      ServeSettings(**data, rollback=rollback), ui_token=os.environ.get(TOKEN_ENV) or None)
