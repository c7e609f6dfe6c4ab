"""Bridge quality (issue #35): how much of a fine-tuned model's lift a query adapter keeps when the
new model searches the old model's index, against re-embedding the whole corpus.

    HF_HUB_OFFLINE=1 EMBEDOPS_SHARED_DATA=../shared/data .venv/bin/python bench/bridge_quality.py \\
        --store STORE --model minilm-ft@1 --old-index OLD_INDEX_ID --new-index NEW_INDEX_ID \\
        [--kinds procrustes,affine,mlp] [--sample 2000] [--seed 0] [--tag NAME]

STORE holds (a) the production index, OLD_INDEX_ID (the base model's, of SciFact's corpus) and (b)
NEW_INDEX_ID, the fine-tuned model's full index of the same corpus (bench/quality.py makes both). For
each adapter kind it fits and stores an adapter with the product's own code
(:func:`embedops.app.bridges.fit_bridge_adapter`) on ``--sample`` documents of the old index, then
scores (c) the bridge, the fine-tuned model's queries through the adapter over the old index, and
(d) the progressive bridge at ``--progressive`` percent of the rebuild (a random share of the
documents answered from the new index, the rest through the adapter, merged by the score line the
adapter's fit measured; each also merged on raw cosines, to show what that calibration is worth). Every
row is scored on SciFact's 300 test queries with the domain gate's own search and metrics
(``run_index``, trec_eval through pytrec_eval) and the gate's paired interval against production.
Nothing here chooses anything by a test score: the adapters' settings are fixed or chosen on their
held-out documents. Writes ``bench/quality-results/DATE-bridge-TAG.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embedops.app.bridges import fit_bridge_adapter, open_bridge, open_progressive_bridge  # noqa: E402
from embedops.beir import read_qrels, read_queries  # noqa: E402
from embedops.guards.domain import run_index  # noqa: E402
from embedops.guards.stats import paired_interval  # noqa: E402
from embedops.metrics import evaluate, mean_metrics  # noqa: E402
from embedops.registry import Registry, Searcher  # noqa: E402
from embedops.store import Store  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from conftest import machine  # noqa: E402


def score(reader, queries, qrels) -> tuple[dict, dict]:
    run, latencies = run_index(reader, queries)
    per_query = evaluate(qrels, run)
    return per_query, {"p50_query_ms": float(np.median(latencies))}


def paired(cand: dict, prod: dict, metric: str = "ndcg@10") -> dict:
    qids = sorted(prod)
    deltas = np.array([cand.get(q, {}).get(metric, 0.0) - prod[q][metric] for q in qids])
    low, high = paired_interval(deltas, 0.95, 2000)
    return {"mean_lift": float(deltas.mean()), "ci_low": low, "ci_high": high, "queries": len(qids)}


def adapter_cost_us(adapter, dim: int, reps: int = 2000) -> float:
    """Median microseconds to map one query vector (what a bridge adds to a query)."""
    x = np.random.default_rng(0).standard_normal((1, dim)).astype(np.float32)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        adapter.apply(x)
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times))


def progressive_rows(reg, rec, args, queries, qrels, prod, base: float, lift: float) -> dict:
    """(d): the bridge with ``--progressive`` percent of the corpus re-embedded, as a progressive
    bridge answers while the rebuild runs: that share (drawn at random, seed ``--seed``) from the
    full new index, the rest through the adapter over the old index, merged by calibrated score."""
    out = {}
    ids = sorted(Searcher(reg).open(args.new_index).doc_ids())
    order = np.random.default_rng(args.seed).permutation(len(ids))
    for percent in (int(p) for p in args.progressive.split(",") if p):
        done = {ids[i] for i in order[: len(ids) * percent // 100]}
        reader = open_progressive_bridge(reg, rec.adapter_id, args.new_index, reembedded=done)
        per_query, extra = score(reader, queries, qrels)
        row = mean_metrics(per_query) | extra | paired(per_query, prod)
        row |= {"adapter_id": rec.adapter_id, "reembedded_share": reader.new_share,
                "calibration": rec.meta["fit"]["calibration"],
                "share_of_lift_kept": (row["ndcg@10"] - base) / lift if lift else None}
        out[f"progressive {rec.kind} {percent}%"] = row
        print(f"{rec.kind} {percent}%", json.dumps({k: row[k] for k in ("ndcg@10", "mean_lift", "ci_low")}), flush=True)
        reader.scale, reader.shift = 1.0, 0.0  # the same merge on raw cosines: what the calibration is worth
        per_query, extra = score(reader, queries, qrels)
        raw = mean_metrics(per_query) | extra | paired(per_query, prod)
        raw["share_of_lift_kept"] = (raw["ndcg@10"] - base) / lift if lift else None
        out[f"progressive {rec.kind} {percent}% raw scores"] = raw
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True, help="the fine-tuned model version (its queries are bridged)")
    ap.add_argument("--old-index", required=True, help="the production index (the base model's)")
    ap.add_argument("--new-index", required=True, help="the fine-tuned model's full index of the same corpus")
    ap.add_argument("--kinds", default="procrustes,affine,mlp")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="scifact")
    ap.add_argument("--progressive", default="25,50,75", help="percent of the rebuild done for the progressive "
                    "rows (a random share of the corpus, seed --seed, taken from the full new index)")
    args = ap.parse_args()
    data = Path(os.environ.get("EMBEDOPS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
    qrels = read_qrels(data / "qrels" / "test.tsv")
    queries = read_queries(data / "queries.jsonl", only=set(qrels))
    reg = Registry(Store.open(args.store))
    searcher = Searcher(reg)
    rows, result = {}, {"bench": "bridge_quality", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                        "command": " ".join(sys.argv), "model": args.model, "old_index": args.old_index,
                        "new_index": args.new_index, "sample": args.sample, "seed": args.seed}
    prod, extra = score(searcher.open(args.old_index), queries, qrels)
    rows["production"] = mean_metrics(prod) | extra
    full, extra = score(searcher.open(args.new_index), queries, qrels)
    rows["full re-embed"] = mean_metrics(full) | extra | paired(full, prod)
    lift = rows["full re-embed"]["ndcg@10"] - rows["production"]["ndcg@10"]
    for kind in args.kinds.split(","):
        start = time.perf_counter()
        rec = fit_bridge_adapter(reg, args.model, args.old_index, kind=kind, sample=args.sample, seed=args.seed)
        fit_total = time.perf_counter() - start
        bridge = open_bridge(reg, rec.adapter_id)
        per_query, extra = score(bridge, queries, qrels)
        row = mean_metrics(per_query) | extra | paired(per_query, prod)
        row |= {"adapter_id": rec.adapter_id, "fit": rec.meta["fit"], "fit_and_sample_seconds": round(fit_total, 1),
                "adapter_us_per_query": round(adapter_cost_us(bridge.encoder.adapter, bridge.encoder.encoder.dim), 1),
                "share_of_lift_kept": (row["ndcg@10"] - rows["production"]["ndcg@10"]) / lift if lift else None}
        rows[f"bridge {kind}"] = row
        print(kind, json.dumps({k: row[k] for k in ("ndcg@10", "mean_lift", "ci_low", "ci_high")}), flush=True)
        rows |= progressive_rows(reg, rec, args, queries, qrels, prod, rows["production"]["ndcg@10"], lift)
    result["rows"] = rows
    out = ROOT / "bench" / "quality-results" / f"{time.strftime('%Y-%m-%d')}-bridge-{args.tag}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"{'':22s} {'nDCG@10':>8s} {'lift':>7s} {'95% CI':>16s} {'kept':>6s}")
    for name, row in rows.items():
        ci = f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" if "ci_low" in row else ""
        kept = f"{row['share_of_lift_kept']:.0%}" if row.get("share_of_lift_kept") is not None else ""
        print(f"{name:22s} {row['ndcg@10']:8.2f} {row.get('mean_lift', 0):+7.2f} {ci:>16s} {kept:>6s}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
