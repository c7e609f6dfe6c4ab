"""Which alpha rule to use when every pair was generated and no labelled dev set is given, judged on
labelled queries the trainer never sees (a BEIR split other than the test one: SciFact's train
queries), never on a test score.

With generated pairs only, the trainer's dev set is a held-out slice of the generated queries, which
rewards the generator's style: it always prefers the highest alpha, which is why the sweep is capped
at 0.6 there (embedops.trainer.config.GENERATED_MAX_ALPHA). So the cross-fit of bench/alpha_rules_dev.py
(halves of that same dev set) cannot judge the rules in this case. This bench lets each rule choose
on the trainer's whole dev set, as the product does, and scores every alpha of the recorded sweep
(and the base) on the labelled judge queries, query by query: the rule whose choice scores higher
there is the one to ship for generated pairs.

For each registered model that `embedops train` made with ``interpolate="auto"`` from generated pairs
(stored merged at its chosen alpha), the fine-tuned weights are recovered from the merge and the
trainer's dev evaluator is rebuilt from the model's recorded settings and the same mined pairs, as in
bench/alpha_rules_dev.py (the recorded sweep's dev means must come back). Per-query scores go to
the raw file.

Example::

    EMBEDOPS_SHARED_DATA=../shared/data HF_HUB_OFFLINE=1 python bench/alpha_rules_generated.py \\
      --store STORE --pairs mined.jsonl --judge ../shared/data/scifact --judge-split train \\
      --model minilm-defaults-extractive-best-alpha-amd-epyc-s1@1 --model ...-s2@1 \\
      --out bench/quality-results/DATE-alpha-rules-generated-on-labelled-train.json
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from alpha_rules_dev import choose, parser, recover

RULES = ("best", "one-se")


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of ``a - b`` with its 95% normal interval over queries."""
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - 1.96 * se), float(d.mean() + 1.96 * se)]}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--judge", type=Path, required=True, help="a BEIR directory with labelled queries")
    ap.add_argument("--judge-split", default="train", help="its qrels split (never the one test figures use)")
    args = ap.parse_args()
    if args.judge_split == "test":
        ap.error("--judge-split test: this bench chooses a default, and a default is never chosen on test")

    from embedops.cpu import cpu_features
    from embedops.registry.models import ModelRegistry
    from embedops.store import Store
    from embedops.trainer.evaluators import labelled_dev_evaluator, per_query_scores
    from embedops.trainer.pairs import read_pairs
    from embedops.trainer.select import interpolate

    registry = ModelRegistry(Store.open(args.store, create=False))
    pairs = read_pairs(args.pairs)
    judge = labelled_dev_evaluator(args.judge, args.judge_split, seed=0)
    rows = []
    for ref in args.model:
        run = recover(registry, ref, pairs)
        metrics, trained, dom_eval, model, base = run.metrics, run.trained_alpha, run.dom_eval, run.model, run.base
        base_state, tuned = run.base_state, run.tuned
        dev, on_judge, check = {}, {}, {}
        for point in metrics["alpha_sweep"]:
            alpha = point["alpha"]
            interpolate(model, base_state, tuned, alpha)
            dev[alpha] = per_query_scores(dom_eval, model)
            on_judge[alpha] = per_query_scores(judge, model)
            check[alpha] = round(float(dev[alpha].mean()) - point["domain_ndcg@10"], 3)
            print(f"{ref} alpha {alpha:g}: dev {dev[alpha].mean():.2f}, judge {on_judge[alpha].mean():.2f}", flush=True)
        on_judge[0.0] = per_query_scores(judge, base)
        # under "best" the rails of an alpha that cannot beat the best allowed dev score are not scored
        # (allowed None); one nearer the base than an allowed alpha is taken as allowed here
        top = max((p["alpha"] for p in metrics["alpha_sweep"] if p["allowed"]), default=0.0)
        allowed = [p["alpha"] for p in metrics["alpha_sweep"] if p["allowed"] or (p["allowed"] is None and p["alpha"] < top)]
        chosen = {r: choose(dev, allowed, r) for r in RULES}
        row = {"model": ref, "trained_alpha": trained, "allowed": allowed, "dev_queries": len(dev[trained]),
               "judge_queries": len(on_judge[0.0]), "recomputed_minus_recorded": check, "chosen": chosen,
               "judge_mean": {str(a): float(s.mean()) for a, s in on_judge.items()},
               "judge_lift_over_base": {r: paired(on_judge[a], on_judge[0.0]) for r, a in chosen.items()},
               "best_minus_one_se_on_judge": paired(on_judge[chosen["best"]], on_judge[chosen["one-se"]]),
               "dev_per_query": {str(a): s.round(3).tolist() for a, s in dev.items()},
               "judge_per_query": {str(a): s.round(3).tolist() for a, s in on_judge.items()}}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("per_query")}), flush=True)
    summary = {"best_minus_one_se_on_judge_mean_over_models":
               float(np.mean([r["best_minus_one_se_on_judge"]["mean"] for r in rows]))}
    print(json.dumps(summary), flush=True)
    args.out.write_text(json.dumps({"bench": "alpha rules for generated pairs, judged on labelled queries",
                                    "date": time.strftime("%Y-%m-%d"), "machine": cpu_features().describe(),
                                    "pairs": str(args.pairs), "judge": f"{args.judge} ({args.judge_split})",
                                    "rows": rows, "summary": summary}) + "\n")


if __name__ == "__main__":
    main()
