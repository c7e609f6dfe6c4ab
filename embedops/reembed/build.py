"""Blue-green index builds: a new model's embeddings of a whole corpus, in a new LanceDB table.

While :class:`IndexBuild` runs, every alias keeps pointing at its old index; nothing changes for
readers until someone promotes the new index (an O(1) alias switch).

* **Resumable.** Embeddings are appended chunk by chunk, each chunk one atomic Lance commit. Rerun
  the same build after a crash (even SIGKILL) and it finds its unfinished index, skips every id
  already written and carries on: every document ends up exactly once.
* **Catch-up.** The main pass reads the corpus at the version current when the build started;
  afterwards the build diffs the index against the corpus's latest version (by id and content
  hash) and embeds what was added or changed, deleting what was removed, until they agree.
  :func:`sync_index` runs the same catch-up on a live index after ``corpus add``.
* **Integrity before ready.** Row count equals corpus count, ids match, no NaN, norms ~1,
  dimension as the model's. From ``ann_threshold`` rows the ANN index its
  :class:`~embedops.index.IndexSettings` name is built (LanceDB's; IVF-PQ by default) and its
  recall@10 against exact search is measured on a sample, with the index's own search settings
  (:mod:`embedops.index.ann`), and recorded. The guards measure it again.
* **Tokenised once per tokenizer.** Token ids are kept in the store by tokenizer and document
  content (:mod:`embedops.reembed.tokens`): the build of a fine-tuned version of a model that was
  built on the same texts before tokenises nothing. The index's metrics count what was reused.
* **One build per inputs at a time.** Builds of the same (model, corpus, precision) are serialised
  by a lock (a file lock on a local store, a lease object on ``s3://``): a second one is refused
  with a message naming the holder, or with ``wait=True`` waits and then returns the index the
  first one finished instead of building a twin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from embedops.checksums import sha256_text
from embedops.corpus import doc_text
from embedops.encoding import OnnxEncoder
from embedops.errors import IndexStateError, UsageError
from embedops.index import (
    IndexParams,
    IndexRecord,
    IndexStatus,
    IntegrityError,
    check_integrity,
    diff_ids,
    index_schema,
    vector_rows,
)
from embedops.index.ann import TableSearch, create_ann_index, measure_ann_recall, sample_vectors
from embedops.index.codecs import codec_for
from embedops.index.settings import IndexSettings
from embedops.records import sql_in
from embedops.registry import PrecisionChoice, Registry, choose_precision, find_ready_index, open_export
from embedops.reembed.tokens import TextChunk, TokenStore

__all__ = ["BuildReport", "IndexBuild", "IndexWriter", "IntegrityError", "MainPassEngine", "sync_index"]

Progress = Callable[[int, int], None]


class MainPassEngine(Protocol):
    """Runs a build's main pass somewhere else (e.g. :class:`~embedops.reembed.ray_engine.RayEngine`).

    It embeds the corpus at ``version``, skipping ``done`` ids, into ``writer``'s table, calls
    ``on_progress(done, total)`` and ``after_chunk(embedded)`` after each commit, and returns the
    number of rows it wrote. Catch-up, checks and registration stay with :class:`IndexBuild`.
    """

    def main_pass(self, writer: "IndexWriter", version: int, done: set[str], on_progress: Progress,
                  after_chunk: Callable[[int], None]) -> int: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BuildReport:
    """What a build or sync did."""

    index: IndexRecord
    embedded: int
    deleted: int
    resumed_from: int
    catch_up_rounds: int
    seconds: float
    checks: dict[str, Any] = field(default_factory=dict)
    finished_by_other: bool = False  # waited for a concurrent build of the same inputs and returns its index

    @property
    def docs_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    @property
    def providers_used(self) -> list[str]:
        """The ONNX Runtime providers that embedded this index (Ray: every actor's), as stored with it."""
        engine = self.index.metrics.get("engine") or {}
        if engine.get("actor_providers"):
            return sorted(engine["actor_providers"])
        provider = engine.get("provider") or self.index.settings.provider
        return [provider] if provider else []


def _check_dims(settings: IndexSettings, model_params: dict, model_ref: str, force: bool) -> None:
    """Refuse a truncated index of a model not trained for that many dimensions (it would lose
    quality without a word) unless ``force``."""
    trained = [int(d) for d in model_params.get("matryoshka_dims") or []]
    if settings.dims is None or force or settings.dims in trained:
        return
    said = f"was trained for {', '.join(map(str, trained))}" if trained else "was not trained with Matryoshka dimensions"
    raise UsageError(f"index setting 'dims': {model_ref} {said}, so its first {settings.dims} dimensions would "
                     "lose quality silently; train with --matryoshka-dims, measure with 'embedops index plan "
                     "--dims', or pass --force-dims")


class IndexBuild:
    """Build (or resume) the index of ``corpus`` under ``model_ref``.

    >>> report = IndexBuild(Registry(store), "minilm@2", "scifact").run()   # doctest: +SKIP
    >>> report.index.status
    <IndexStatus.READY: 'ready'>
    """

    def __init__(self, registry: Registry, model_ref: str, corpus: str, *, precision: str = "fp32",
                 chunk_size: int = 1024, batch_size: int | None = None, settings: IndexSettings | None = None,
                 providers: list[str] | None = None, device: str = "auto", allow_cpu_fallback: bool = False,
                 runtime: str = "auto", on_progress: Progress | None = None,
                 after_chunk: Callable[[int], None] | None = None, engine: MainPassEngine | None = None,
                 wait: bool = False, on_wait: Callable[[str], None] | None = None, force_dims: bool = False):
        self.registry = registry
        self.wait = wait
        self.on_wait = on_wait or (lambda holder: None)
        self.engine = engine
        self.model = registry.models.get(model_ref)
        self.corpus = corpus
        self.precision = precision  # "auto" is resolved when the build runs (see run)
        self.precision_choice: PrecisionChoice | None = None
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.settings = settings or IndexSettings()  # how the index keeps and searches its vectors
        _check_dims(self.settings, self.model.params or {}, self.model.ref, force_dims)
        if engine is not None and self.settings.vectors != "float32":
            raise UsageError(f"index setting 'vectors': a {self.settings.vectors} index is built by the local "
                             "engine (its int8 ranges are calibrated on the first chunk); leave out --ray")
        self.providers = providers
        self.device = device
        self.allow_cpu_fallback = allow_cpu_fallback
        self.runtime = runtime
        self.on_progress = on_progress or (lambda done, total: None)
        self.after_chunk = after_chunk or (lambda n: None)
        registry.corpora.info(corpus)  # fails early, clearly, if the corpus does not exist

    def _resumable(self) -> IndexRecord | None:
        for rec in reversed(self.registry.indexes.list()):
            if (rec.built_from(self.model.ref, self.corpus, self.precision) and rec.settings.index == self.settings
                    and rec.status in (IndexStatus.BUILDING, IndexStatus.FAILED)):
                return rec
        return None

    def lock_name(self) -> str:
        """The lock serialising builds of this (model, corpus, precision)."""
        key = sha256_text(f"{self.model.ref}\0{self.corpus}\0{self.precision}")[:16]
        return f"index-build-{key}"

    def run(self) -> BuildReport:
        """Build or resume the index, holding the build lock for these inputs throughout.
        ``precision="auto"`` is resolved first (:func:`~embedops.registry.choose_precision`: bf16 on
        a CPU with bf16 instructions when its export passes parity, else fp32); the index records why."""
        started = time.perf_counter()
        if self.precision == "auto" and getattr(self.engine, "gpus_per_worker", 0):
            self.precision_choice = PrecisionChoice("fp32", "fp32: the encoder actors run on GPUs (bf16 is a CPU "
                                                            "precision; ask for fp16 there)")
        elif self.precision == "auto":
            self.precision_choice = choose_precision(self.registry, self.model.ref, "auto", providers=self.providers,
                                                     device=self.device, runtime=self.runtime)
        if self.precision_choice is not None:
            self.precision = self.precision_choice.precision
        ready_before = {r.index_id for r in self.registry.indexes.list() if r.status is IndexStatus.READY}
        lock = self.registry.store.lock(self.lock_name(), wait=self.wait, on_wait=self.on_wait,
                                        what=f"an index build of {self.model.ref} on {self.corpus} ({self.precision})")
        with lock:
            if lock.waited:
                done = find_ready_index(self.registry, self.model.ref, self.corpus, self.precision)
                if done is not None and done.index_id not in ready_before:
                    return BuildReport(done, 0, 0, 0, 0, time.perf_counter() - started,
                                       done.metrics.get("integrity", {}), finished_by_other=True)
            return self._run()

    def _run(self) -> BuildReport:
        export = open_export(self.registry, self.model.ref, self.precision, providers=self.providers,
                             batch_size=self.batch_size, device=self.device,
                             allow_cpu_fallback=self.allow_cpu_fallback, runtime=self.runtime)
        artifact, encoder = export.artifact, export.encoder
        record = self._resumable()
        if record is None:
            snapshot = self.registry.corpora.info(self.corpus).version
            params = IndexParams(precision=self.precision, corpus_version=snapshot, onnx_digest=artifact.digest,
                                 dim=encoder.dim, provider=encoder.provider, index=self.settings)
            record = self.registry.indexes.create(self.model.ref, self.corpus, params=params.to_dict())
        elif record.status is IndexStatus.FAILED:
            record = self.registry.indexes.update(record.index_id, status=IndexStatus.BUILDING, reason="resumed")
        writer = IndexWriter(self.registry, record, encoder, chunk_size=self.chunk_size)
        started = time.perf_counter()
        try:
            done = writer.existing_ids()
            resumed_from = len(done)
            version = int(record.settings.corpus_version)
            if self.engine is None:
                embedded = writer.main_pass(version, done, self.on_progress, self.after_chunk)
            else:
                embedded = self.engine.main_pass(writer, version, done, self.on_progress, self.after_chunk)
            rounds, added, deleted = writer.catch_up()
            checks = writer.check_integrity()
            kind = record.settings.index.ann_kind(writer.count())
            if kind is not None:
                checks["ann"] = writer.build_ann(kind)
        except IntegrityError as exc:
            self.registry.indexes.update(record.index_id, status=IndexStatus.FAILED, reason=str(exc))
            raise
        seconds = time.perf_counter() - started
        tbl = writer.table()
        final = self.registry.indexes.update(
            record.index_id, status=IndexStatus.READY, doc_count=tbl.count_rows(), table_version=tbl.version,
            metrics=record.metrics | {"integrity": checks, "build_seconds": round(seconds, 3),
                                      "engine": (self.engine.describe() if self.engine
                                                 else {"engine": "local", "provider": encoder.provider}),
                                      "docs_per_second": round((embedded + added) / seconds, 1) if seconds else None}
                                     | (writer.tokens.counts() if writer.tokens and self.engine is None else {})
                                     | ({"precision_choice": self.precision_choice.to_dict()} if self.precision_choice else {}),
        )
        return BuildReport(final, embedded + added, deleted, resumed_from, rounds, seconds, checks)


class IndexWriter:
    """Writes embeddings of one index's corpus into its LanceDB table (used by build and sync)."""

    def __init__(self, registry: Registry, record: IndexRecord, encoder: OnnxEncoder, *, chunk_size: int = 1024):
        self.registry = registry
        self.record = record
        self.encoder = encoder
        self.chunk_size = chunk_size
        self.codec = codec_for(record.settings.index, encoder.dim, record.settings.calibration)
        self.schema = index_schema(self.codec)
        # token ids kept per tokenizer: a later build (a fine-tune of the same base) tokenises nothing
        self.tokens = TokenStore(registry.store.db, encoder) if encoder.token_ids_reusable else None

    def table(self):
        return self.registry.store.open_table(self.record.table_name)

    def versioned_schema(self) -> pa.Schema:
        """The index table's schema as the store writes it (with the schema-version metadata)."""
        from embedops.store import with_schema_version

        return with_schema_version(self.schema)

    def has_table(self) -> bool:
        return self.registry.store.has_table(self.record.table_name)

    def count(self) -> int:
        return self.table().count_rows() if self.has_table() else 0

    def existing_ids(self) -> set[str]:
        if not self.has_table():
            return set()
        ids: set[str] = set()
        for batch in self.table().search().select(["id"]).limit(None).to_batches(65536):
            ids.update(batch.column("id").to_pylist())
        return ids

    def _append(self, rows: pa.Table) -> None:
        if self.has_table():
            self.table().add(rows)
        else:
            self.registry.store.create_table(self.record.table_name, rows)

    def _corpus_batches(self, version: int | None, where: str | None = None) -> Iterator[pa.RecordBatch]:
        tbl = self.registry.corpora.table(self.record.corpus, version)
        q = tbl.search().select(["id", "title", "text", "content_hash"]).limit(None)
        if where:
            q = q.where(where)
        yield from q.to_batches(self.chunk_size)

    def _embed_batches(self, batches: Iterator[pa.RecordBatch], skip: set[str]) -> Iterator[pa.Table]:
        """Embed the rows of ``batches`` not in ``skip``; tokenises ahead while ONNX Runtime runs."""
        pending: list[tuple[list[str], list[str]]] = []

        def chunks():
            for b in batches:
                d = b.to_pydict()
                keep = [i for i, doc_id in enumerate(d["id"]) if doc_id not in skip]
                if not keep:
                    continue
                pending.append(([d["id"][i] for i in keep], [d["content_hash"][i] for i in keep]))
                texts = [doc_text(d["title"][i], d["text"][i]) for i in keep]
                yield texts if self.tokens is None else TextChunk(pending[-1][1], texts)

        for vectors in self.encoder.encode_stream(chunks(), self.tokens.ids if self.tokens else None):
            ids, hashes = pending.pop(0)
            if self.codec.needs_calibration:
                self._calibrate(vectors)
            yield vector_rows(ids, hashes, vectors, self.codec)

    def _calibrate(self, vectors: np.ndarray) -> None:
        """int8 codes: take each dimension's range from the first chunk embedded and keep it in the
        record before any code is written (a resumed build reads it back)."""
        self.codec = self.codec.calibrated(vectors)
        self.record = self.registry.indexes.update(
            self.record.index_id, params=self.record.params | {"calibration": self.codec.require_scale().to_list()})

    def main_pass(self, version: int, done: set[str], on_progress: Progress, after_chunk) -> int:
        total = self.registry.corpora.table(self.record.corpus, version).count_rows()
        progress = min(len(done), total)
        on_progress(progress, total)
        embedded = 0
        for rows in self._embed_batches(self._corpus_batches(version), done):
            self._append(rows)
            embedded += rows.num_rows
            progress += rows.num_rows
            on_progress(progress, total)
            after_chunk(embedded)
        return embedded

    def diff(self) -> tuple[list[str], list[str]]:
        """(ids to embed: new or changed, ids to delete) between the corpus now and the index."""
        return diff_ids(self.table() if self.has_table() else None, self.registry.corpora.table(self.record.corpus))

    def catch_up(self, max_rounds: int = 5) -> tuple[int, int, int]:
        """Apply corpus changes made since the snapshot; returns (rounds, embedded, deleted)."""
        embedded = deleted = 0
        for rounds in range(1, max_rounds + 1):
            upsert, delete = self.diff()
            if not upsert and not delete:
                return rounds - 1, embedded, deleted
            for start in range(0, len(upsert), self.chunk_size):
                ids = upsert[start : start + self.chunk_size]
                for rows in self._embed_batches(self._corpus_batches(None, sql_in("id", ids)), set()):
                    if self.has_table():
                        self.table().merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
                    else:
                        self._append(rows)
                    embedded += rows.num_rows
            for start in range(0, len(delete), 1000):
                self.table().delete(sql_in("id", delete[start : start + 1000]))
            deleted += len(delete)
        raise IndexStateError(f"index {self.record.index_id}: corpus kept changing during {max_rounds} catch-up rounds")

    def check_integrity(self, norm_tolerance: float = 1e-3) -> dict[str, Any]:
        """Counts, ids, NaN, norms and dimension; raises IntegrityError on any failure."""
        return check_integrity(self.record.index_id, self.table() if self.has_table() else None,
                               self.registry.corpora.table(self.record.corpus), self.codec, norm_tolerance)

    def build_ann(self, kind: str = "IVF_PQ", sample: int = 100, k: int = 10, seed: int = 0) -> dict[str, Any]:
        """The ``kind`` ANN index (LanceDB's) with the record's settings, and its recall@k against
        exact search on ``sample`` stored vectors used as queries, searched with the serving
        settings. Reads vectors batch by batch."""
        tbl = self.table()
        settings = self.record.settings.index
        built = create_ann_index(tbl, self.codec, kind, settings.partitions, settings.sub_vectors)
        search = TableSearch(tbl, self.codec, settings.search)
        return built | measure_ann_recall(search, sample_vectors(tbl, self.codec, sample, seed), k)


def sync_index(registry: Registry, index_id: str, *, providers: list[str] | None = None,
               chunk_size: int = 1024) -> BuildReport:
    """Bring a ready index up to date with its corpus: embed added/changed docs with the index's own
    model and export, delete removed ones; no full rebuild."""
    started = time.perf_counter()
    record = registry.indexes.get(index_id)
    if record.status is not IndexStatus.READY:
        raise IndexStateError(f"index {index_id} is {record.status.value}; only ready indexes are synced")
    encoder = open_export(registry, record.model_ref, record.precision, providers=providers).encoder
    writer = IndexWriter(registry, record, encoder, chunk_size=chunk_size)
    rounds, embedded, deleted = writer.catch_up()
    checks = writer.check_integrity()
    tbl = writer.table()
    if tbl.version != record.table_version:
        record = registry.indexes.update(index_id, doc_count=tbl.count_rows(), table_version=tbl.version)
        registry.audit.record("index.sync", index_id, embedded=embedded, deleted=deleted, table_version=tbl.version)
    return BuildReport(record, embedded, deleted, 0, rounds, time.perf_counter() - started, checks)
