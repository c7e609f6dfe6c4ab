"""Inputs to docs/SCALING.md measured on this machine: tokenizer throughput per CPU core (the step
that moves to the CPU side once the encoder is on a GPU) and Lance append throughput for 384-d
vectors (the write side of a build), each on SciFact-sized data."""

import os
import time

import numpy as np
import pyarrow as pa

from conftest import record
from embedops.corpus import doc_text, read_documents
from helpers import bundled_model_path


def test_tokenizer_and_lance_write_rates(benchmark, scifact, tmp_path):
    import lancedb
    from tokenizers import Tokenizer

    os.environ["RAYON_NUM_THREADS"] = "1"  # one core: tokenizers otherwise parallelises batches
    texts = [doc_text(d.title, d.text) for d in read_documents(scifact)]
    tok = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.encode_batch(texts[:100])
    t = time.perf_counter()
    encs = [tok.encode(x) for x in texts]  # one thread
    tok_seconds = time.perf_counter() - t
    mean_tokens = float(np.mean([len(e.ids) for e in encs]))

    n, dim = 200_000, 384
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    table = pa.table({"id": [f"doc-{i:09d}" for i in range(n)], "content_hash": ["0" * 64] * n,
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)})
    db = lancedb.connect(str(tmp_path / "lance"))
    chunks = [table.slice(i, 8192) for i in range(0, n, 8192)]
    holder = {}

    def write():
        tbl = db.create_table("v", data=chunks[0])
        for c in chunks[1:]:
            tbl.add(c)
        holder["t"] = tbl

    benchmark.pedantic(write, rounds=1, iterations=1)
    write_seconds = benchmark.stats.stats.mean
    results = {
        "tokenizer_docs_per_s_one_core": len(texts) / tok_seconds, "mean_tokens_per_doc": mean_tokens,
        "lance_rows_per_s_8192_row_commits": n / write_seconds,
        "lance_mb_per_s": table.nbytes / write_seconds / 1e6, "bytes_per_row": table.nbytes / n,
    }
    assert holder["t"].count_rows() == n
    benchmark.extra_info.update(results)
    record("scaling_inputs_cpu", results)
