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
  dimension as the model's. Above ``ann_threshold`` rows an IVF-PQ ANN index is built
  (LanceDB's) and its recall@10 against exact search is measured on a sample, with the serving
  search settings (:mod:`embedops.reembed.ann`), and recorded. The guards measure it again.
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

from embedops.corpus import doc_text
from embedops.errors import EmbedopsError, IndexStateError
from embedops.records import sql_in
from embedops.registry import IndexRecord, IndexStatus, Registry
from embedops.reembed.ann import VECTOR, VECTOR_BATCH_ROWS, has_ann_index, measure_ann_recall, sample_vectors
from embedops.reembed.encoder import OnnxEncoder
from embedops.reembed.onnx_export import ensure_export
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


class IntegrityError(EmbedopsError):
    """An index failed its integrity checks and was not marked ready."""


def index_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False),
    ])


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


class IndexBuild:
    """Build (or resume) the index of ``corpus`` under ``model_ref``.

    >>> report = IndexBuild(Registry(store), "minilm@2", "scifact").run()   # doctest: +SKIP
    >>> report.index.status
    <IndexStatus.READY: 'ready'>
    """

    def __init__(self, registry: Registry, model_ref: str, corpus: str, *, precision: str = "fp32",
                 chunk_size: int = 1024, batch_size: int | None = None, ann_threshold: int = 100_000,
                 providers: list[str] | None = None, on_progress: Progress | None = None,
                 after_chunk: Callable[[int], None] | None = None, engine: MainPassEngine | None = None,
                 wait: bool = False, on_wait: Callable[[str], None] | None = None):
        self.registry = registry
        self.wait = wait
        self.on_wait = on_wait or (lambda holder: None)
        self.engine = engine
        self.model = registry.models.get(model_ref)
        self.corpus = corpus
        self.precision = precision
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.ann_threshold = ann_threshold
        self.providers = providers
        self.on_progress = on_progress or (lambda done, total: None)
        self.after_chunk = after_chunk or (lambda n: None)
        registry.corpora.info(corpus)  # fails early, clearly, if the corpus does not exist

    def _resumable(self) -> IndexRecord | None:
        for rec in reversed(self.registry.indexes.list()):
            if (rec.model_ref == self.model.ref and rec.corpus == self.corpus
                    and rec.params.get("precision") == self.precision
                    and rec.status in (IndexStatus.BUILDING, IndexStatus.FAILED)):
                return rec
        return None

    def lock_name(self) -> str:
        """The lock serialising builds of this (model, corpus, precision)."""
        import hashlib

        key = hashlib.sha256(f"{self.model.ref}\0{self.corpus}\0{self.precision}".encode()).hexdigest()[:16]
        return f"index-build-{key}"

    def run(self) -> BuildReport:
        """Build or resume the index, holding the build lock for these inputs throughout."""
        started = time.perf_counter()
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
        artifact, onnx_path = ensure_export(self.registry, self.model.ref, self.precision, providers=self.providers)
        encoder = OnnxEncoder(onnx_path, providers=self.providers, batch_size=self.batch_size)
        record = self._resumable()
        if record is None:
            snapshot = self.registry.corpora.info(self.corpus).version
            record = self.registry.indexes.create(self.model.ref, self.corpus, params={
                "precision": self.precision, "corpus_version": snapshot, "onnx_digest": artifact.digest,
                "dim": encoder.dim, "provider": encoder.provider,
            })
        elif record.status is IndexStatus.FAILED:
            record = self.registry.indexes.update(record.index_id, status=IndexStatus.BUILDING, reason="resumed")
        writer = IndexWriter(self.registry, record, encoder, chunk_size=self.chunk_size)
        started = time.perf_counter()
        try:
            done = writer.existing_ids()
            resumed_from = len(done)
            version = int(record.params["corpus_version"])
            if self.engine is None:
                embedded = writer.main_pass(version, done, self.on_progress, self.after_chunk)
            else:
                embedded = self.engine.main_pass(writer, version, done, self.on_progress, self.after_chunk)
            rounds, added, deleted = writer.catch_up()
            checks = writer.check_integrity()
            if writer.count() >= self.ann_threshold:
                checks["ann"] = writer.build_ann()
        except IntegrityError as exc:
            self.registry.indexes.update(record.index_id, status=IndexStatus.FAILED, reason=str(exc))
            raise
        seconds = time.perf_counter() - started
        tbl = writer.table()
        final = self.registry.indexes.update(
            record.index_id, status=IndexStatus.READY, doc_count=tbl.count_rows(), table_version=tbl.version,
            metrics=record.metrics | {"integrity": checks, "build_seconds": round(seconds, 3),
                                      "engine": self.engine.describe() if self.engine else {"engine": "local"},
                                      "docs_per_second": round((embedded + added) / seconds, 1) if seconds else None},
        )
        return BuildReport(final, embedded + added, deleted, resumed_from, rounds, seconds, checks)


class IndexWriter:
    """Writes embeddings of one index's corpus into its LanceDB table (used by build and sync)."""

    def __init__(self, registry: Registry, record: IndexRecord, encoder: OnnxEncoder, *, chunk_size: int = 1024):
        self.registry = registry
        self.record = record
        self.encoder = encoder
        self.chunk_size = chunk_size
        self.schema = index_schema(encoder.dim)

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

    def _rows(self, ids: list[str], hashes: list[str], vectors: np.ndarray) -> pa.Table:
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.Table.from_arrays(
            [pa.array(ids, pa.string()), pa.array(hashes, pa.string()),
             pa.FixedSizeListArray.from_arrays(flat, self.encoder.dim)],
            schema=self.schema,
        )

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
                yield [doc_text(d["title"][i], d["text"][i]) for i in keep]

        for vectors in self.encoder.encode_stream(chunks()):
            ids, hashes = pending.pop(0)
            yield self._rows(ids, hashes, vectors)

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
        corpus = self.registry.corpora.table(self.record.corpus)
        want: dict[str, str] = {}
        for b in corpus.search().select(["id", "content_hash"]).limit(None).to_batches(65536):
            want.update(zip(b.column("id").to_pylist(), b.column("content_hash").to_pylist()))
        have: dict[str, str] = {}
        if self.has_table():
            for b in self.table().search().select(["id", "content_hash"]).limit(None).to_batches(65536):
                have.update(zip(b.column("id").to_pylist(), b.column("content_hash").to_pylist()))
        upsert = [i for i, h in want.items() if have.get(i) != h]
        delete = [i for i in have if i not in want]
        return upsert, delete

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
        corpus = self.registry.corpora.table(self.record.corpus)
        problems = []
        n_index, n_corpus = self.count(), corpus.count_rows()
        if n_index != n_corpus:
            problems.append(f"row count {n_index} != corpus count {n_corpus}")
        upsert, delete = self.diff()
        if upsert or delete:
            problems.append(f"{len(upsert)} corpus ids missing or stale, {len(delete)} extra ids")
        dim = self.table().schema.field(VECTOR).type.list_size if self.has_table() else 0
        if dim != self.encoder.dim:
            problems.append(f"vector dimension {dim} != model dimension {self.encoder.dim}")
        nan = 0
        worst = 0.0
        if self.has_table():
            for b in self.table().search().select([VECTOR]).limit(None).to_batches(VECTOR_BATCH_ROWS):
                v = b.column(VECTOR).flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
                nan += int(np.isnan(v).any(axis=1).sum())
                norms = np.linalg.norm(np.nan_to_num(v), axis=1)
                if len(norms):
                    worst = max(worst, float(np.abs(norms - 1).max()))
        if nan:
            problems.append(f"{nan} vectors contain NaN")
        if worst > norm_tolerance:
            problems.append(f"vector norms deviate from 1 by up to {worst:.4g} (tolerance {norm_tolerance})")
        if problems:
            raise IntegrityError(f"index {self.record.index_id} failed integrity checks: " + "; ".join(problems))
        return {"rows": n_index, "corpus_rows": n_corpus, "dim": dim, "nan_vectors": 0, "max_norm_error": worst}

    def build_ann(self, sample: int = 100, k: int = 10, seed: int = 0) -> dict[str, Any]:
        """IVF-PQ ANN index (LanceDB), with its recall@k against exact search on ``sample`` stored
        vectors used as queries, searched with the serving settings. Reads vectors batch by batch."""
        tbl = self.table()
        n = tbl.count_rows()
        partitions = max(1, int(np.sqrt(n)))
        sub_vectors = next(s for s in (self.encoder.dim // 8, self.encoder.dim // 4, 1) if s and self.encoder.dim % s == 0)
        import warnings

        with warnings.catch_warnings():  # LanceDB's notice about its newer create_index signature
            warnings.simplefilter("ignore", DeprecationWarning)
            tbl.create_index(metric="cosine", vector_column_name=VECTOR, index_type="IVF_PQ",
                             num_partitions=partitions, num_sub_vectors=sub_vectors)
        recall = measure_ann_recall(tbl, sample_vectors(tbl, sample, seed), k)
        return {"type": "IVF_PQ", "partitions": partitions, "sub_vectors": sub_vectors} | recall


def sync_index(registry: Registry, index_id: str, *, providers: list[str] | None = None,
               chunk_size: int = 1024) -> BuildReport:
    """Bring a ready index up to date with its corpus: embed added/changed docs with the index's own
    model and export, delete removed ones; no full rebuild."""
    started = time.perf_counter()
    record = registry.indexes.get(index_id)
    if record.status is not IndexStatus.READY:
        raise IndexStateError(f"index {index_id} is {record.status.value}; only ready indexes are synced")
    _, onnx_path = ensure_export(registry, record.model_ref, record.params.get("precision", "fp32"), providers=providers)
    writer = IndexWriter(registry, record, OnnxEncoder(onnx_path, providers=providers), chunk_size=chunk_size)
    rounds, embedded, deleted = writer.catch_up()
    checks = writer.check_integrity()
    tbl = writer.table()
    if tbl.version != record.table_version:
        record = registry.indexes.update(index_id, doc_count=tbl.count_rows(), table_version=tbl.version)
        registry.audit.record("index.sync", index_id, embedded=embedded, deleted=deleted, table_version=tbl.version)
    return BuildReport(record, embedded, deleted, 0, rounds, time.perf_counter() - started, checks)


def find_ready_index(registry: Registry, model_ref: str, corpus: str, precision: str | None = None) -> IndexRecord | None:
    """The newest ready index of ``corpus`` built with ``model_ref`` (and ``precision``), if any."""
    ref = registry.models.get(model_ref).ref
    for rec in reversed(registry.indexes.list()):
        if (rec.model_ref == ref and rec.corpus == corpus and rec.status is IndexStatus.READY
                and (precision is None or rec.params.get("precision") == precision)):
            return rec
    return None


def check_index_integrity(registry: Registry, index_id: str, *, queries: np.ndarray | None = None,
                          sample: int = 100, k: int = 10, seed: int = 0) -> dict[str, Any]:
    """Re-run the integrity checks of an index now (raises IntegrityError) and, when it has an ANN
    index, measure its recall@k against exact search now, with the serving search settings, on up
    to ``sample`` of ``queries`` (query vectors; default: stored vectors picked at random)."""
    record = registry.indexes.get(index_id)
    _, onnx_path = ensure_export(registry, record.model_ref, record.params.get("precision", "fp32"))
    writer = IndexWriter(registry, record, OnnxEncoder(onnx_path))
    checks = writer.check_integrity()
    tbl = registry.store.open_table(record.table_name, version=record.table_version)
    if has_ann_index(tbl):
        if queries is None or not len(queries):
            queries = sample_vectors(tbl, sample, seed)
        elif len(queries) > sample:
            queries = queries[np.sort(np.random.default_rng(seed).choice(len(queries), sample, replace=False))]
        checks["ann"] = {"measured": "at check time"} | measure_ann_recall(tbl, queries, k)
    return checks
