"""Bridges: a new model version searching an index the old model built, through a query adapter,
so the new model can answer before the corpus is re-embedded (issue #35).

:func:`fit_bridge_adapter` embeds a sample of the old index's documents with the new model (the old
vectors are read from the index, not re-encoded), fits the map (:mod:`embedops.trainer.adapters`)
and stores it with its lineage (:mod:`embedops.registry.adapters`). :func:`open_bridge` opens the
old index with an encoder that maps the new model's query vectors into its space;
:func:`open_progressive_bridge` also searches the new model's index while it is being built.

>>> rec = fit_bridge_adapter(reg, "minilm-ft@1", "scifact--minilm-v1--707bb951", kind="procrustes")  # doctest: +SKIP
>>> open_bridge(reg, rec.adapter_id).search(["statins and memory"], 10)                              # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embedops.corpus import doc_text
from embedops.encoding.adapter import ADAPTER_KINDS, BridgedEncoder
from embedops.errors import IndexStateError, UsageError
from embedops.index import IndexReader, IndexStatus, ProgressiveReader
from embedops.records import sql_in
from embedops.registry import AdapterRecord, Registry, Searcher, SearchResult, open_encoder
from embedops.registry.progressive import open_progressive
from embedops.trainer.adapters import fit_adapter

DEFAULT_SAMPLE = 2000
_CHUNK = 256  # documents embedded between progress reports


@dataclass(frozen=True)
class _Sample:
    ids: list[str]
    texts: list[str]
    old: np.ndarray


def _ready(registry: Registry, index_id: str):
    rec = registry.indexes.get(index_id)
    if rec.status is not IndexStatus.READY:
        raise IndexStateError(f"index {index_id} is {rec.status.value}: an adapter bridges to a ready index")
    return rec


def _sample(registry: Registry, rec, size: int, seed: int) -> _Sample:
    """``size`` documents of the index (fewer if it holds fewer), each with the text its vector was
    embedded from: a document whose corpus row changed since the build is left out."""
    table = registry.store.open_table(rec.table_name, version=rec.table_version)
    ids = sorted(IndexReader(table, rec).doc_ids())
    if not ids:
        raise UsageError(f"index {rec.index_id} holds no documents to fit an adapter on")
    chosen = sorted(np.random.default_rng(seed).choice(len(ids), size=min(size, len(ids)), replace=False))
    wanted = [ids[i] for i in chosen]
    stored: dict[str, tuple[str, np.ndarray]] = {}  # vectors as the index keeps them (codes decoded)
    docs: dict[str, tuple[str, str]] = {}
    codec = rec.settings.codec
    corpus = registry.corpora.table(rec.corpus)
    for start in range(0, len(wanted), 1000):
        part = sql_in("id", wanted[start : start + 1000])
        rows = table.search().where(part).select(["id", "content_hash", codec.decoded_column]).limit(None).to_arrow()
        stored.update(zip(rows.column("id").to_pylist(),
                          zip(rows.column("content_hash").to_pylist(), codec.decode(rows.column(codec.decoded_column)))))
        rows = corpus.search().where(part).select(["id", "title", "text", "content_hash"]).limit(None) \
            .to_arrow().to_pylist()
        docs.update((r["id"], (r["content_hash"], doc_text(r["title"], r["text"]))) for r in rows)
    keep = [i for i in wanted if i in stored and i in docs and stored[i][0] == docs[i][0]]
    return _Sample(keep, [docs[i][1] for i in keep],
                   np.vstack([stored[i][1] for i in keep]) if keep else np.zeros((0, 1), np.float32))


def fit_bridge_adapter(registry: Registry, model_ref: str, index_id: str, *, kind: str = "procrustes",
                       sample: int = DEFAULT_SAMPLE, seed: int = 0, holdout: float = 0.2,
                       max_seconds: float = 120.0, progress: Callable[[int, int], None] | None = None) -> AdapterRecord:
    """Fit and store an adapter from ``model_ref``'s query space into index ``index_id``'s space.
    ``progress(done, total)`` is called as the sampled documents are embedded by the new model."""
    if kind not in ADAPTER_KINDS:
        raise UsageError(f"unknown adapter kind {kind!r}; choose one of {', '.join(ADAPTER_KINDS)}")
    rec = _ready(registry, index_id)
    model = registry.models.get(model_ref)
    if model.ref == rec.model_ref:
        raise UsageError(f"{index_id} was built by {model.ref} itself: its queries need no adapter")
    if sample < 1:
        raise UsageError(f"--sample must be at least 1, got {sample}")
    docs = _sample(registry, rec, sample, seed)
    encoder = open_encoder(registry, model.ref, "fp32")
    new = np.zeros((len(docs.texts), encoder.dim), np.float32)
    for start in range(0, len(docs.texts), _CHUNK):
        new[start : start + _CHUNK] = encoder.encode(docs.texts[start : start + _CHUNK])
        if progress:
            progress(min(start + _CHUNK, len(docs.texts)), len(docs.texts))
    adapter, figures = fit_adapter(new, docs.old, kind=kind, holdout=holdout, seed=seed, max_seconds=max_seconds)
    meta = {"model_ref": model.ref, "model_digest": model.digest, "index_id": rec.index_id,
            "index_model_ref": rec.model_ref, "corpus": rec.corpus, "index_table_version": rec.table_version,
            "sample": {"requested": sample, "documents": len(docs.ids), "seed": seed}, "fit": figures}
    return registry.adapters.put(model.ref, rec.index_id, adapter, meta)


def open_progressive_bridge(registry: Registry, adapter_id: str, new_index_id: str, *, runtime: str = "auto",
                            reembedded: set[str] | None = None) -> ProgressiveReader:
    """The bridge searching both spaces while ``new_index_id`` (the adapter's new model's index of
    the same corpus, being built or done) fills: its documents in the new space, the rest through
    the adapter in the old space (:class:`~embedops.index.ProgressiveReader`). ``reembedded``
    names the documents to take from the new index (default: all it holds now)."""
    record, adapter = registry.adapters.load(adapter_id)
    old = _ready(registry, record.index_id)
    new = registry.indexes.get(new_index_id)
    if new.model_ref != record.model_ref or new.corpus != old.corpus:
        raise UsageError(f"{new_index_id} is {new.model_ref}'s index of {new.corpus!r}; the bridge needs "
                         f"{record.model_ref}'s index of {old.corpus!r}")
    if new.status is IndexStatus.RETIRED:
        raise IndexStateError(f"index {new_index_id} is retired")
    encoder = open_encoder(registry, record.model_ref, "fp32", runtime=runtime)
    latest = new.table_version if new.status is IndexStatus.READY else None  # a build in progress: what it has now
    return open_progressive(registry, registry.target(adapter_id), new, latest, encoder, adapter.apply, reembedded)


def open_bridge(registry: Registry, adapter_id: str, *, runtime: str = "auto") -> IndexReader:
    """The adapter's old index, opened with the new model's encoder mapped through the adapter."""
    record, adapter = registry.adapters.load(adapter_id)
    rec = _ready(registry, record.index_id)
    table = registry.store.open_table(rec.table_name, version=rec.table_version)
    return IndexReader(table, rec, BridgedEncoder(open_encoder(registry, record.model_ref, "fp32", runtime=runtime),
                                                  adapter))


def progressive_search(registry: Registry, adapter_id: str, new_index_id: str, text: str, k: int = 10) -> SearchResult:
    """One query through :func:`open_progressive_bridge`, with titles; ``bridge`` in the result
    also says which index is being built and what share of the corpus it answered from."""
    start = time.perf_counter()
    reader = open_progressive_bridge(registry, adapter_id, new_index_id)
    opened = time.perf_counter()
    hits = Searcher(registry).with_titles(reader.record, reader.search([text], k)[0])
    done = time.perf_counter()
    return SearchResult(text, reader.index_id, reader.record.model_ref, hits, 1000 * (done - opened),
                        1000 * (opened - start), reader.bridge_info)
