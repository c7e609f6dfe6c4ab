"""LanceDB search cost by how many query vectors go in one query (issue #34): what the server's
search batcher saves by sending the queries of concurrent requests together.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/search_batches.py --store STORE [--index INDEX_ID]

Searches a ready index of the store (default: the one ``production`` points at; bench/serve_peers.py
makes a store with the bundled model's index of SciFact) with the vectors of real queries (SciFact's,
embedded by the index's model), k = 10, the serving query (`embedops.index.ann.vector_query`). For
each batch size n (1, 8, 32, 64): n searches one by one against one query of n vectors
(`IndexReader.search_vectors`), 5 interleaved passes, median ms. Writes
``bench/cpu-results/DATE-search-batches.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import machine  # noqa: E402

from embedops.registry import Registry, Searcher  # noqa: E402
from embedops.store import Store  # noqa: E402

SIZES = (1, 8, 32, 64)
PASSES = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--index", default=None, help="index id (default: production's)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "cpu-results" /
                    f"{time.strftime('%Y-%m-%d')}-search-batches.json")
    args = ap.parse_args()
    reg = Registry(Store.open(args.store))
    index_id = args.index or reg.aliases.current("production")
    reader = Searcher(reg).open(index_id)
    scifact = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    queries = [json.loads(line)["text"] for line in (scifact / "queries.jsonl").read_text().splitlines()][:max(SIZES)]
    vectors = reader.encode(queries)
    reader.search_vectors(vectors[:8], 10)  # warm
    times: dict[int, dict[str, list[float]]] = {n: {"one_by_one": [], "together": []} for n in SIZES}
    for _ in range(PASSES):
        for n in SIZES:
            start = time.perf_counter()
            for v in vectors[:n]:
                reader.search_vectors(v[None, :], 10)
            times[n]["one_by_one"].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            reader.search_vectors(vectors[:n], 10)
            times[n]["together"].append(1000 * (time.perf_counter() - start))
    rows = [{"queries": n, "one_by_one_ms": round(statistics.median(t["one_by_one"]), 2),
             "together_ms": round(statistics.median(t["together"]), 2),
             "ratio": round(statistics.median(t["one_by_one"]) / statistics.median(t["together"]), 2)}
            for n, t in times.items()]
    result = {"bench": "search_batches", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "command": " ".join(sys.argv), "index": index_id, "documents": reader.count(), "k": 10,
              "passes": PASSES, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for r in rows:
        print(r)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
