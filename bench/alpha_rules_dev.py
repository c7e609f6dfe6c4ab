"""Which alpha rule generalises on dev: the best dev score, or the one-standard-error rule, judged
on held-out halves of the trainer's own dev queries (never on a test score).

For each registered model that `embedops train` made with ``interpolate="auto"`` (stored merged at
its chosen alpha), the fine-tuned weights are recovered from the merge (``base + (merged - base) /
alpha``) and the trainer's own dev evaluator is rebuilt from the model's recorded settings and the
same mined pairs (the same seeded split of queries), then each alpha of its recorded sweep is scored
query by query. The recorded sweep's dev means must come back (a check that the weights and the
split are the trainer's). Then, over many random halvings of the dev queries, each rule chooses alpha
on one half, among the alphas the recorded sweep allowed (the general rails do not depend on the dev
queries), and is scored on the other half: the rule whose choices score higher on queries it did not
see is the one that generalises. Per-query dev scores go to the raw file.

Example::

    EMBEDOPS_SHARED_DATA=../shared/data HF_HUB_OFFLINE=1 python bench/alpha_rules_dev.py \\
      --store STORE --pairs mined.jsonl --model minilm-defaults-labelled-defs-rail-amd-epyc-s0@1 \\
      --model ...-s1@1 --out bench/quality-results/DATE-alpha-rules-on-dev.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def choose(dev: dict[float, np.ndarray], allowed: list[float], rule: str) -> float:
    """The alpha ``rule`` picks from per-query dev scores ``dev`` among ``allowed``: "best" the best
    mean, "one-se" the lowest alpha within one standard error of the paired difference from the best
    (as embedops.trainer.select does, without its early stop of the sweep)."""
    from embedops.trainer.select import _within_noise

    best = max(allowed, key=lambda a: (dev[a].mean(), a))
    if rule == "best":
        return best
    return min(a for a in allowed if _within_noise(dev[best], dev[a]))


@dataclasses.dataclass
class RecoveredRun:
    """A version `embedops train` stored merged at its chosen alpha, taken apart again: its recorded
    ``metrics``, the ``trained_alpha``, the trainer's own dev evaluator (``dom_eval``, the same seeded
    split of the same pairs), the parent (``base``, ``base_state``), the loaded ``model`` and the
    fine-tuned weights before the merge (``tuned``)."""

    metrics: dict
    trained_alpha: float
    dom_eval: object
    base: object
    base_state: dict
    model: object
    tuned: dict


def recover(registry, ref: str, pairs) -> RecoveredRun:
    """``ref``'s fine-tuned weights from its merge (``base + (merged - base) / alpha``) and the
    trainer's dev evaluator rebuilt from its recorded settings and ``pairs``."""
    from sentence_transformers import SentenceTransformer

    from embedops.trainer.config import TrainConfig
    from embedops.trainer.dataset import training_data
    from embedops.trainer.evaluators import domain_evaluator

    version = registry.get(ref)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in version.params.items() if k in fields})
    trained = float(version.metrics["alpha"])
    data = training_data(pairs, config, None)
    dom_eval = domain_evaluator(data.held_out, data.train, seed=config.seed)
    base = SentenceTransformer(str(registry.artifact_path(registry.get(version.parent))), device="cpu")
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    model = SentenceTransformer(str(registry.artifact_path(version)), device="cpu")
    tuned = {k: base_state[k] + (v - base_state[k]) / trained if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    return RecoveredRun(version.metrics, trained, dom_eval, base, base_state, model, tuned)


def cross_fit(dev: dict[float, np.ndarray], allowed: list[float], rules: tuple[str, ...], halvings: int,
              seed: int) -> dict[str, list[float]]:
    """For each of ``halvings`` random halvings, each rule's choice on one half scored on the other
    (both ways): a list of held-out half means per rule, paired across rules."""
    rng = np.random.default_rng(seed)
    n = len(next(iter(dev.values())))
    out: dict[str, list[float]] = {r: [] for r in rules} | {"alpha_" + r: [] for r in rules}
    for _ in range(halvings):
        order = rng.permutation(n)
        for pick, judge in ((order[: n // 2], order[n // 2:]), (order[n // 2:], order[: n // 2])):
            on_pick = {a: s[pick] for a, s in dev.items()}
            for rule in rules:
                alpha = choose(on_pick, allowed, rule)
                out[rule].append(float(dev[alpha][judge].mean()))
                out["alpha_" + rule].append(alpha)
    return out


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every alpha-rule bench takes (store, pairs, models, out), its docstring as help."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[1])
    ap.add_argument("--store", required=True)
    ap.add_argument("--pairs", type=Path, required=True, help="the mined pairs the models were trained on")
    ap.add_argument("--model", action="append", required=True, help="a model version trained with alpha 'auto'")
    ap.add_argument("--out", type=Path, required=True)
    return ap


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--halvings", type=int, default=500)
    args = ap.parse_args()

    from embedops.cpu import cpu_features
    from embedops.registry.models import ModelRegistry
    from embedops.store import Store
    from embedops.trainer.evaluators import per_query_scores
    from embedops.trainer.pairs import read_pairs
    from embedops.trainer.select import interpolate

    registry = ModelRegistry(Store.open(args.store, create=False))
    pairs = read_pairs(args.pairs)
    rows = []
    for ref in args.model:
        run = recover(registry, ref, pairs)
        metrics, trained, dom_eval, model = run.metrics, run.trained_alpha, run.dom_eval, run.model
        base_state, tuned = run.base_state, run.tuned
        dev, check = {}, {}
        for point in metrics["alpha_sweep"]:
            alpha = point["alpha"]
            interpolate(model, base_state, tuned, alpha)
            dev[alpha] = per_query_scores(dom_eval, model)
            check[alpha] = round(float(dev[alpha].mean()) - point["domain_ndcg@10"], 3)
        allowed = [p["alpha"] for p in metrics["alpha_sweep"] if p["allowed"]]
        fits = cross_fit(dev, allowed, ("best", "one-se"), args.halvings, seed=0)
        diff = np.array(fits["best"]) - np.array(fits["one-se"])
        row = {"model": ref, "trained_alpha": trained, "allowed": allowed, "dev_queries": len(dev[trained]),
               "recomputed_minus_recorded": check,
               "chosen_on_all_dev": {r: choose(dev, allowed, r) for r in ("best", "one-se")},
               "held_out_half": {r: float(np.mean(fits[r])) for r in ("best", "one-se")},
               "best_minus_one_se": float(diff.mean()),
               "best_minus_one_se_halvings_above_0": float((diff > 0).mean()),
               "best_minus_one_se_halvings_below_0": float((diff < 0).mean()),
               "alpha_counts": {r: {str(a): fits["alpha_" + r].count(a) for a in allowed} for r in ("best", "one-se")},
               "dev_per_query": {str(a): s.round(3).tolist() for a, s in dev.items()}}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "dev_per_query"}), flush=True)
    summary = {"best_minus_one_se_mean_over_models": float(np.mean([r["best_minus_one_se"] for r in rows]))}
    print(json.dumps(summary), flush=True)
    args.out.write_text(json.dumps({"bench": "alpha rules cross-fitted on dev halves", "date": time.strftime("%Y-%m-%d"),
                                    "machine": cpu_features().describe(), "pairs": str(args.pairs),
                                    "halvings": args.halvings, "rows": rows, "summary": summary}) + "\n")


if __name__ == "__main__":
    main()
