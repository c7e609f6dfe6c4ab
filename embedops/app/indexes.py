"""Indexes as the commands and the pipeline need them: built with the engine asked for, or found
ready (and built when missing) and opened for mining, round trips and the guards.

>>> rec = ready_index(registry, "minilm@1", "scifact")          # doctest: +SKIP
>>> reader = open_ready_index(registry, "minilm@1", "scifact")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from embedops.errors import UsageError
from embedops.index import IndexReader, IndexRecord, IndexSettings, IndexStatus
from embedops.reembed import BuildReport, IndexBuild, sync_index
from embedops.registry import Registry, Searcher

ENGINES = ("local", "ray")


def build_index(registry: Registry, model_ref: str, corpus: str, *, engine: str = "local", address: str | None = None,
                workers: int = 2, gpus_per_worker: float = 0, cpus_per_worker: int = 1,
                **build_options) -> BuildReport:
    """Run an :class:`~embedops.reembed.IndexBuild` with the ``local`` or ``ray`` main-pass engine;
    ``build_options`` go to IndexBuild (precision, batch_size, device, allow_cpu_fallback, runtime,
    settings (an :class:`~embedops.index.IndexSettings`), on_progress, wait, ...); Ray actors get
    the same batch size, fallback rule and runtime."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: use local or ray")
    runner = None
    if engine == "ray":
        from embedops.reembed.ray_engine import RayEngine

        runner = RayEngine(address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                           threads_per_worker=cpus_per_worker, batch_size=build_options.get("batch_size"),
                           allow_cpu_fallback=build_options.get("allow_cpu_fallback", False),
                           runtime=build_options.get("runtime", "auto"))
    return IndexBuild(registry, model_ref, corpus, engine=runner, **build_options).run()


def ready_index(registry: Registry, model_ref: str, corpus: str, on_wait: Callable[[str], None] | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                settings: IndexSettings | None = None) -> IndexRecord:
    """The newest ready index of ``corpus`` under ``model_ref`` (built with ``settings``, when
    given); built (or waited for) when missing, reporting ``on_progress(done, total)`` as it embeds."""
    ref = registry.models.get(model_ref).ref
    found = [i for i in registry.indexes.list() if i.status is IndexStatus.READY and i.built_from(ref, corpus)
             and (settings is None or i.settings.index == settings)]
    return found[-1] if found else IndexBuild(registry, model_ref, corpus, wait=True, on_wait=on_wait,
                                              on_progress=on_progress, settings=settings).run().index


def open_ready_index(registry: Registry, model_ref: str, corpus: str) -> IndexReader:
    """:func:`ready_index`, opened for search with its model's encoder."""
    return Searcher(registry).open(ready_index(registry, model_ref, corpus))


def sync_indexes(registry: Registry, index_id: str | None = None,
                 around: Callable[[str], AbstractContextManager] | None = None) -> list[BuildReport]:
    """:func:`~embedops.reembed.sync_index` on ``index_id``, or on every index an alias points at;
    ``around(index_id)`` (e.g. a status spinner) wraps each sync."""
    ids = [index_id] if index_id else sorted({a.value for a in registry.aliases.list() if a.value})
    reports = []
    for i in ids:
        with around(i) if around else nullcontext():
            reports.append(sync_index(registry, i))
    return reports
