"""Distributed main pass of an index build on Ray Data (``embedops index build --engine ray``).

Only the main pass moves to the cluster; everything else of :class:`~embedops.reembed.IndexBuild`
(the index record, resume, catch-up, integrity checks, ANN index, registration) is the same code
as the local engine, run on the driver. The pass:

1. ``ray.data.read_lance`` reads the corpus table at the build's snapshot version, in blocks;
2. ``map_batches`` sends blocks to a pool of encoder actors (one ONNX Runtime session per actor;
   ``num_gpus`` per actor when GPUs exist). Each actor drops ids the index already holds (resume),
   embeds the rest and writes them as Lance fragment files of the new table
   (``lance.fragment.write_fragments``): vectors go from the worker straight to storage;
3. the driver receives only the fragments' metadata and commits them to the index table
   (``LanceDataset.commit``), one atomic commit per ``commit_every`` fragments, so a killed build
   resumes from its last commit like a local one. Fragment files written but never committed are
   invisible to readers (Lance's ``cleanup_old_versions`` removes them).

Libraries doing the work: Ray Data (scheduling, blocks, actor pools, back-pressure) and pylance
(fragment writes and commits). A local two-worker cluster is what the tests run; pass
``address="ray://head:10001"`` or ``"auto"`` to use an existing cluster. Every worker must reach the
store (``s3://`` stores work anywhere; a local store needs a shared filesystem) and the ONNX export,
which each actor loads from the store's artifacts.

Example::

    from embedops.reembed import IndexBuild
    from embedops.reembed.ray_engine import RayEngine

    IndexBuild(registry, "minilm@2", "scifact", engine=RayEngine(workers=4, gpus_per_worker=1)).run()
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from embedops.errors import EmbedopsError
from embedops.index import vector_rows

FRAGMENT_COLUMN = "fragment"
ROWS_COLUMN = "rows"
PROVIDER_COLUMN = "provider"
REUSED_COLUMN = "token_ids_reused"  # a block's counts ride on its first fragment's row (0 on the others)
TOKENIZED_COLUMN = "texts_tokenized"


class RayEngineError(EmbedopsError):
    """The Ray engine could not run (Ray or pylance missing, cluster unreachable, ...)."""


def _require_ray():
    try:
        import lance  # noqa: F401  (pylance: fragment writes and commits)
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RayEngineError(
            f"--engine ray needs Ray Data and pylance ({exc.name} is not installed): "
            "pip install 'embedops[ray]'"
        ) from None
    return ray


class _EmbedAndWriteFragments:
    """Ray Data actor: embeds a block and writes it as Lance fragments; returns their metadata."""

    def __init__(self, onnx_dir: str, table_uri: str, schema_ipc: bytes, storage_options: dict[str, str],
                 skip_ref: Any, threads: int, batch_size: int | None, device: str, allow_cpu_fallback: bool, runtime: str,
                 store_uri: str, artifact: str, files: list[dict]):
        import os
        from pathlib import Path

        # tokenisation (Rust, rayon) uses this actor's CPUs, not every core of the node
        os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, threads)))

        import ray

        from embedops.checksums import FileChecksum, verify_files
        from embedops.encoding import OnnxEncoder

        if not Path(onnx_dir).is_dir():  # another machine: fetch the export from the store, verified
            from embedops.errors import ChecksumMismatchError
            from embedops.store import Store

            checksums = [FileChecksum(**f) for f in files]
            onnx_dir = str(Store.open(store_uri, create=False).materialize(artifact, checksums))
            problems = verify_files(Path(onnx_dir), checksums)
            if problems:
                raise ChecksumMismatchError(artifact, problems)
        # device "cuda" on a GPU actor: a CUDA provider that cannot start fails the build (DeviceError)
        # unless allow_cpu_fallback; the provider that ran is returned with every block
        self.encoder = OnnxEncoder(onnx_dir, threads=threads, batch_size=batch_size, device=device,
                                   allow_cpu_fallback=allow_cpu_fallback, runtime=runtime)
        self.tokens = None  # the store's token ids of this tokenizer (embedops.reembed.tokens), as a local build
        if self.encoder.token_ids_reusable:
            import lancedb

            from embedops.reembed.tokens import TokenStore

            self.tokens = TokenStore(lancedb.connect(store_uri, storage_options=storage_options or None), self.encoder)
        self.table_uri = table_uri
        self.schema = pa.ipc.read_schema(pa.py_buffer(schema_ipc))
        self.storage_options = storage_options or None
        self.skip = ray.get(skip_ref) if skip_ref is not None else frozenset()

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lance.fragment import write_fragments

        from embedops.corpus import doc_text

        d = batch.to_pydict()
        keep = [i for i, doc_id in enumerate(d["id"]) if doc_id not in self.skip]
        if not keep:
            return pa.table({FRAGMENT_COLUMN: pa.array([], pa.string()), ROWS_COLUMN: pa.array([], pa.int64()),
                             PROVIDER_COLUMN: pa.array([], pa.string()), REUSED_COLUMN: pa.array([], pa.int64()),
                             TOKENIZED_COLUMN: pa.array([], pa.int64())})
        texts = [doc_text(d["title"][i], d["text"][i]) for i in keep]
        hashes = [d["content_hash"][i] for i in keep]
        counts = (0, len(texts))
        if self.tokens is None:
            vectors = self.encoder.encode(texts)
        else:
            import numpy as np

            from embedops.reembed.tokens import TextChunk

            before = (self.tokens.reused, self.tokens.tokenized)
            vectors = np.vstack(list(self.encoder.encode_stream([TextChunk(hashes, texts)], self.tokens.ids)))
            counts = (self.tokens.reused - before[0], self.tokens.tokenized - before[1])
        rows = vector_rows([d["id"][i] for i in keep], hashes, vectors).replace_schema_metadata(self.schema.metadata)
        fragments = write_fragments(rows, self.table_uri, schema=self.schema, storage_options=self.storage_options)
        first = [1] + [0] * (len(fragments) - 1)
        return pa.table({FRAGMENT_COLUMN: [json.dumps(f.to_json()) for f in fragments],
                         ROWS_COLUMN: [f.num_rows for f in fragments],
                         PROVIDER_COLUMN: [self.encoder.provider] * len(fragments),
                         REUSED_COLUMN: [counts[0] * f for f in first], TOKENIZED_COLUMN: [counts[1] * f for f in first]})


@dataclass
class RayEngine:
    """Runs an index build's main pass on Ray Data (see the module docstring).

    ``address``: None starts a local cluster with ``workers`` CPUs; anything else is passed to
    ``ray.init`` ("auto", "ray://host:10001"). ``gpus_per_worker`` > 0 makes the encoder actors GPU
    actors that run ONNX Runtime on CUDA, and fail the build if its CUDA provider cannot start (unless
    ``allow_cpu_fallback``). ``threads_per_worker`` (``--cpus-per-worker``) is the CPUs each actor
    reserves: ONNX Runtime's intra-op threads on a CPU actor, tokenisation threads on a GPU actor,
    which needs several to keep the GPU fed (one by default). ``batch_size`` is per actor (default:
    the actor's device default, 256 on CUDA and 32 on CPU). After a run, :attr:`actor_providers`
    counts the rows each ONNX Runtime provider embedded.
    """

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0
    threads_per_worker: int = 1
    commit_every: int = 8
    batch_size: int | None = None
    allow_cpu_fallback: bool = False
    runtime: str = "auto"
    name: str = "ray"
    actor_providers: dict[str, int] = field(default_factory=dict)
    token_counts: dict[str, int] = field(default_factory=dict)  # token_ids_reused / texts_tokenized of the last pass

    def _connect(self):
        ray = _require_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                # one CPU per encoder thread, plus one for the read tasks (which would otherwise
                # wait forever for a CPU held by an actor)
                ray.init(num_cpus=self.workers * self.threads_per_worker + 1, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        return ray

    def main_pass(self, writer, version: int, done: set[str], on_progress, after_chunk) -> int:
        """Embed the corpus at ``version`` (minus ``done`` ids) into ``writer``'s table; returns rows written."""
        import lance

        ray = self._connect()
        self.actor_providers = {}
        self.token_counts = {REUSED_COLUMN: 0, TOKENIZED_COLUMN: 0}
        store = writer.registry.store
        corpus_table = writer.registry.corpora.table(writer.record.corpus, version)
        total = corpus_table.count_rows()
        progress = min(len(done), total)
        on_progress(progress, total)
        table_uri = store.table_uri(writer.record.table_name)
        options = store.storage_options()
        schema = writer.versioned_schema()
        export = writer.registry.artifacts.get(writer.record.model_ref, f"onnx-{writer.record.precision}")
        rows_per_block = max(1, writer.chunk_size)
        ds = ray.data.read_lance(
            store.table_uri(writer.registry.corpora.table_name(writer.record.corpus)), version=version,
            columns=["id", "title", "text", "content_hash"], storage_options=options or None, num_cpus=0.5,
            override_num_blocks=max(self.workers, -(-total // rows_per_block)),
        )
        ds = ds.map_batches(
            _EmbedAndWriteFragments,
            fn_constructor_kwargs=dict(
                onnx_dir=str(writer.encoder.path), table_uri=table_uri, schema_ipc=schema.serialize().to_pybytes(),
                storage_options=options, skip_ref=ray.put(frozenset(done)) if done else None,
                threads=self.threads_per_worker, batch_size=self.batch_size,
                device="cuda" if self.gpus_per_worker else "cpu", allow_cpu_fallback=self.allow_cpu_fallback,
                runtime=self.runtime,
                store_uri=store.uri, artifact=export.artifact, files=[f.to_dict() for f in export.files],
            ),
            batch_size=rows_per_block, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_gpus=self.gpus_per_worker or None, num_cpus=self.threads_per_worker,
        )
        embedded = 0
        pending: list[Any] = []
        pending_rows = 0

        def commit() -> None:
            nonlocal pending, pending_rows, embedded, progress
            if not pending:
                return
            if store.has_table(writer.record.table_name):  # has committed versions (not just fragment files)
                base = lance.dataset(table_uri, storage_options=options or None)
                lance.LanceDataset.commit(table_uri, lance.LanceOperation.Append(pending), read_version=base.version,
                                          storage_options=options or None)
            else:
                lance.LanceDataset.commit(table_uri, lance.LanceOperation.Overwrite(schema, pending),
                                          storage_options=options or None)
            embedded += pending_rows
            progress += pending_rows
            pending, pending_rows = [], 0
            on_progress(progress, total)
            after_chunk(embedded)

        for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for frag, n, provider in zip(out.column(FRAGMENT_COLUMN).to_pylist(), out.column(ROWS_COLUMN).to_pylist(),
                                         out.column(PROVIDER_COLUMN).to_pylist()):
                pending.append(lance.FragmentMetadata.from_json(frag))
                pending_rows += n
                self.actor_providers[provider] = self.actor_providers.get(provider, 0) + n
            for column in (REUSED_COLUMN, TOKENIZED_COLUMN):
                self.token_counts[column] += sum(out.column(column).to_pylist())
            if len(pending) >= self.commit_every:
                commit()
        commit()
        return embedded

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "address": self.address or "local", "workers": self.workers,
                "gpus_per_worker": self.gpus_per_worker, "threads_per_worker": self.threads_per_worker,
                "batch_size": self.batch_size, "actor_providers": dict(self.actor_providers),
                **self.token_counts}


def shutdown() -> None:
    """Stop the local Ray cluster this process started (tests and the CLI call it when done)."""
    try:
        import ray
    except ImportError:  # pragma: no cover
        return
    if ray.is_initialized():
        ray.shutdown()


