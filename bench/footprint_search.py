"""Bytes and search latency of each stored vector kind (issue #36), at 1x and 10x SciFact, as ratios
to float32 measured in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/footprint_search.py --store STORE --index INDEX_ID

Reads the float32 vectors of a ready SciFact index (5,183 documents) and writes, per scale (1x and
10x: the documents repeated with fresh ids, 51,830 rows), one LanceDB table per kind through the
product's own path (``embedops.index.codecs``: int8 calibrated on the first 1,024 documents as a
build does; sign bits rescored with int8, float32 or not at all; an index's ``TableSearch`` to
search it). At 10x two ANN rows are added: float32 with IVF_PQ and binary+int8 with IVF_FLAT
(hamming), built as ``index build`` builds them. Each table is searched with the 300 SciFact test
queries (embedded by the index's model), one query per call, k = 10, in 3 passes whose kind order
rotates; p50 and p99 per kind over all calls. Bytes: what the codec keeps per document and the
table's size on disk. Writes ``bench/cpu-results/DATE-footprint-search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import machine  # noqa: E402

from embedops.index import IndexSettings  # noqa: E402
from embedops.index.ann import TableSearch, create_ann_index  # noqa: E402
from embedops.index.codecs import codec_for  # noqa: E402
from embedops.index.table import vector_rows  # noqa: E402
from embedops.registry import Registry, Searcher  # noqa: E402
from embedops.store import Store  # noqa: E402

KINDS = {"float32": IndexSettings(), "int8": IndexSettings(vectors="int8"),
         "binary+int8": IndexSettings(vectors="binary"),
         "binary+float32": IndexSettings(vectors="binary", rescore="float32"),
         "binary": IndexSettings(vectors="binary", rescore="none")}
ANN_AT_10X = {"float32 IVF_PQ": (IndexSettings(), "IVF_PQ"), "binary+int8 IVF_FLAT": (IndexSettings(vectors="binary"), "IVF_FLAT")}
PASSES, K = 3, 10


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tables(db, root: Path, ids: list[str], vectors: np.ndarray, scale: int) -> dict[str, tuple]:
    """One table per kind (and the ANN rows at 10x): name -> (TableSearch, codec, disk bytes)."""
    out = {}
    all_ids = [f"{i}#{r}" for r in range(scale) for i in ids]
    all_vectors = np.tile(vectors, (scale, 1))
    rows = list(KINDS.items()) + ([(n, s) for n, (s, _) in ANN_AT_10X.items()] if scale > 1 else [])
    for name, settings in rows:
        codec = codec_for(settings, vectors.shape[1])
        if codec.needs_calibration:
            codec = codec.calibrated(all_vectors[:1024])
        table_name = f"t{scale}_{name.replace('+', '_').replace(' ', '_')}"
        tbl = None
        for start in range(0, len(all_ids), 8192):
            part = vector_rows(all_ids[start : start + 8192], ["h"] * len(all_ids[start : start + 8192]),
                               all_vectors[start : start + 8192], codec)
            if tbl is None:
                tbl = db.create_table(table_name, part)
            else:
                tbl.add(part)
        if name in dict(ANN_AT_10X) and scale > 1:
            create_ann_index(tbl, codec, ANN_AT_10X[name][1])
        out[name] = (TableSearch(tbl, codec, settings.search), codec, _disk_bytes(root / f"{table_name}.lance"))
    return out


def _time(tables: dict, queries: np.ndarray) -> dict[str, list[float]]:
    names = list(tables)
    for name in names:  # warm: an int8 table reads its codes into memory once
        tables[name][0].search(queries[:2], K)
    times: dict[str, list[float]] = {n: [] for n in names}
    for p in range(PASSES):
        order = names[p % len(names):] + names[: p % len(names)]
        for q in queries:
            for name in order:
                start = time.perf_counter()
                tables[name][0].search(q[None, :], K)
                times[name].append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--index", required=True, help="a ready float32 index of SciFact")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "cpu-results" /
                    f"{time.strftime('%Y-%m-%d')}-footprint-search.json")
    args = ap.parse_args()
    reg = Registry(Store.open(args.store))
    reader = Searcher(reg).open(args.index)
    ids = sorted(reader.doc_ids())
    stored = reader.stored_vectors(ids)
    vectors = np.vstack([stored[i] for i in ids])
    scifact = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    test = {line.split("\t")[0] for line in (scifact / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    texts = [q["text"] for q in map(json.loads, (scifact / "queries.jsonl").read_text().splitlines()) if q["_id"] in test]
    queries = reader.encode(texts)
    root = Path(tempfile.mkdtemp(prefix="footprint-search-"))
    import lancedb

    db = lancedb.connect(str(root))
    results = {}
    try:
        for scale in (1, 10):
            tables = _tables(db, root, ids, vectors, scale)
            times = _time(tables, queries)
            base = np.percentile(times["float32"], [50, 99])
            results[f"{scale}x"] = {"documents": len(ids) * scale, "kinds": {
                name: {"bytes_per_document": codec.bytes_per_document, "disk_bytes": disk,
                       "p50_ms": round(float(np.percentile(times[name], 50)), 3),
                       "p99_ms": round(float(np.percentile(times[name], 99)), 3),
                       "p50_vs_float32": round(float(np.percentile(times[name], 50) / base[0]), 3),
                       "p99_vs_float32": round(float(np.percentile(times[name], 99) / base[1]), 3),
                       "calls": len(times[name])}
                for name, (_, codec, disk) in tables.items()}}
            print(json.dumps(results[f"{scale}x"], indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"bench": "footprint_search", "date": time.strftime("%Y-%m-%d"), "index": args.index,
           "queries": len(queries), "passes": PASSES, "k": K, "results": results, "machine": machine(),
           "command": "HF_HUB_OFFLINE=1 .venv/bin/python bench/footprint_search.py --store STORE --index " + args.index}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
