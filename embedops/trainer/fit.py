"""Contrastive fine-tuning with the sentence-transformers trainer, with the recipe chosen on the
user's own held-out queries and forgetting kept in bounds. The steps, each in its module:

1. data (:mod:`~embedops.trainer.dataset`): a tenth of the queries held out, replay of general pairs at
   ``replay_fraction`` (with general pairs and "auto", dev chooses where the general rails hold alpha back:
   :mod:`~embedops.trainer.replay`), every pair given as many negatives (never a known positive of its query): a
   pair short of mined ones is topped up with other pairs' positives or left out (``top_up``; dev
   chooses where many pairs are short);
2. loss (:mod:`~embedops.trainer.losses`, plug-ins by name): MultipleNegativesRankingLoss, its GradCache
   form (``loss="auto"`` picks it when a step would hold more than 8,192 tokens), or CachedGISTEmbedLoss
   guided by the base model. Batches never hold a known positive of a row's query as another row's
   text (:mod:`~embedops.trainer.batching`);
3. train and select (:mod:`~embedops.trainer.trial`, :mod:`~embedops.trainer.select`): the learning
   rate from a small grid and the number of steps by early stopping on the held-out queries (or a
   labelled ``domain_dev``), within ``budget_minutes``; the weights of the best dev score are kept;
4. interpolate: WiSE-FT with the base model (Wortsman et al., 2022; LM-Cocktail, Xiao et al., 2023),
   ``theta = alpha * tuned + (1 - alpha) * base``, alpha chosen on the same queries while the general
   score stays within ``max_general_drop`` points of the base's;
5. register: a new model version whose lineage records the parent, the sha256 of the pair files,
   every setting and every choice made on dev (``params["chosen"]``), the seed, the loss curve, the
   dev curve and the final metrics.

bf16 (fp16 where the GPU lacks bf16) on a GPU, and bf16 on a CPU with AVX512-BF16 or AMX
(``mixed_precision="auto"``, see docs/BENCHMARKS.md); checkpoints every epoch (or every ``save_steps``),
resumed when a run with the same inputs and settings is restarted. ``max_seq_length`` caps the tokens
per text while training only (all-MiniLM-L6-v2 was itself trained at 128); dev scores, the sweep and
the registered version use the model's own limit.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from embedops.checksums import sha256_json
from embedops.cpu import CpuFeatures, cpu_features
from embedops.data import general_path
from embedops.errors import UsageError
from embedops.registry import ModelVersion, Registry
from embedops.trainer.config import RecipePlan, TrainConfig, TrainResult, resolve_loss, resolve_recipe
from embedops.trainer.dataset import TrainingData, split_by_query, top_ups_to_try, training_data
from embedops.trainer.evaluators import (BUNDLED_GENERAL_EVAL, DEV_SCORING, bundled_general_eval, domain_evaluator,
                                         general_evaluator, general_retrieval_evaluator, labelled_dev_evaluator,
                                         per_query_scores, score)
from embedops.trainer.losses import LossSetup, make_loss
from embedops.trainer.losses.matryoshka import matryoshka
from embedops.trainer.margins import margins_to_try, mined_range, parse_rule, rule_label
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.replay import replays_to_try, with_replay
from embedops.trainer.select import Judge, RecipeSearch, interpolate, judge_by_sweep, search_recipe, sweep_alpha
from embedops.trainer.trial import Precision, Trial, run_trial


def mixed_precision(choice: str, cuda: bool, cpu: CpuFeatures | None = None) -> Precision:
    """The trainer's precision switches: ``auto`` means bf16 on a GPU that has it, else fp16 there; on
    a CPU, bf16 autocast where the CPU has AVX512-BF16 or AMX (detected, see :mod:`embedops.cpu`) and
    fp32 elsewhere (emulated bf16 is slower than fp32)."""
    import torch

    if choice == "auto":
        if not cuda:
            return Precision((cpu or cpu_features()).bf16, False)
        bf16 = torch.cuda.is_bf16_supported()
        return Precision(bf16, not bf16)
    if choice == "fp16" and not cuda:
        raise UsageError("fp16 training needs a GPU; on a CPU use bf16 (AVX512-BF16 or AMX) or fp32")
    return Precision(choice == "bf16", choice == "fp16")


def _queries(n: int) -> str:
    """'1 query', '80 queries': the scorer's size as the report reads it."""
    return f"{n} {'query' if n == 1 else 'queries'}"


def base_copy(model, rank: int) -> dict:
    """The base weights kept for interpolation and for starting each trial: once, by rank 0 (the only
    rank that interpolates), in CPU memory, so no GPU holds a second copy of the model while it trains."""
    if rank != 0:
        return {}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_key(base: ModelVersion, pair_hashes: list[str], config: TrainConfig) -> str:
    return sha256_json({"base": base.digest, "pairs": pair_hashes, "config": asdict(config),
                        "dev_scoring": DEV_SCORING})[:16]


def _domain_scorer(config: TrainConfig, data: TrainingData):
    """(evaluator, its name in the report): the labelled dev set, else the held-out pairs, else none."""
    if config.domain_dev:
        ev = labelled_dev_evaluator(Path(config.domain_dev), config.domain_dev_split, seed=config.seed)
        return ev, f"{config.domain_dev} ({config.domain_dev_split}, {_queries(len(ev.queries))})"
    if data.held_out:
        ev = domain_evaluator(data.held_out, data.train, seed=config.seed)
        return ev, f"held-out pairs ({_queries(len(ev.queries))}{', graded' if ev.grades else ''})"
    return None, None


def _at_full_length(evaluator, tokens: int) -> Callable[[object], float]:
    """Score the dev set at the model's own token limit while it trains at a shorter one, so the dev
    curve, the alpha sweep and the registered model are scored alike."""

    def dev(model) -> float:
        training = model.max_seq_length
        model.max_seq_length = tokens
        try:
            return score(evaluator, model)
        finally:
            model.max_seq_length = training

    return dev


def _train(model, data_for: Callable[[str], TrainingData], loss, config: TrainConfig, plan: RecipePlan, *,
           rules: tuple[str, ...], replays: tuple[float, ...], judge: Judge | None, base_state: dict, dev,
           out_dir: Path, precision: Precision, world: int, clock, on_log) -> tuple[list[Trial], RecipeSearch | None]:
    """The train and select steps: a search on dev when the plan chooses, else one trial as given.
    ``data_for(rule)`` gives the training data under a negatives rule (``rules``: those to try; a
    top-up rule, with a margin where the mined candidates are filtered again, :mod:`~embedops.trainer.margins`;
    ``replays``: replay shares to probe where ``judge`` finds the general rails holding alpha back,
    :mod:`~embedops.trainer.replay`)."""
    if not plan.chosen_on_dev:
        trial = run_trial(model, data_for(rules[0]), loss, config, lr=plan.lrs[0], epochs=plan.epochs,
                          folder=out_dir, precision=precision, world=world, clock=clock, on_log=on_log)
        return [trial], None

    def run(lr: float, epochs: int, deadline: float, pause: int | None, top_up: str) -> Trial:
        folder = out_dir / (f"lr-{lr:g}" + ("" if top_up == "random" else "-" + top_up.replace(", margin ", "-m")
                                                                               .replace(", replay ", "-r")))
        if not any(folder.glob("checkpoint-*")):  # a fresh trial starts from the base weights
            model.load_state_dict(base_state)
        return run_trial(model, data_for(top_up), loss, config, lr=lr, epochs=epochs, folder=folder,
                         precision=precision, dev=dev, deadline=deadline, pause_after_epochs=pause, clock=clock,
                         world=world, on_log=on_log)

    search = search_recipe(model, run, lrs=plan.lrs, epochs=plan.epochs, budget_s=config.budget_minutes * 60,
                           clock=clock, top_ups=rules, replays=replays, judge=judge)
    if search.best is None:
        raise UsageError(f"the time budget ({config.budget_minutes:g} minutes) ran out before a dev score was "
                         "taken: raise --budget")
    return search.trials, search


def _judge(tokens: int, base_state: dict, config: TrainConfig, before: dict, dom_eval, general: dict,
           base_per_query: dict) -> Judge:
    """The replay probe's judge (:func:`~embedops.trainer.select.judge_by_sweep`) at the model's own
    token limit, as the registered model's alpha is swept."""

    def judge(model):
        training = model.max_seq_length
        model.max_seq_length = tokens
        try:
            return judge_by_sweep(model, base_state, config, before, dom_eval, general, base_per_query)
        finally:
            model.max_seq_length = training

    return judge


def _data_variants(pairs, config: TrainConfig, general_pairs, first: TrainingData) -> Callable[[str], TrainingData]:
    """``rule -> TrainingData`` (a negatives rule's label), each built once (``first`` is already built)."""
    made = {first.rule: first}

    def data_for(top_up: str) -> TrainingData:
        if top_up not in made:
            made[top_up] = training_data(pairs, config, general_pairs, top_up=top_up)
        return made[top_up]

    return data_for


def fit(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, name: str | None = None,
        general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None,
        config: TrainConfig | None = None, pair_hashes: list[str] | None = None,
        on_log: Callable[[dict], None] | None = None, clock: Callable[[], float] = time.monotonic) -> TrainResult | None:
    """Fine-tune ``base_ref`` on ``pairs`` in this process and register the result as the next
    version of ``name``. Inside a torchrun process group (``WORLD_SIZE`` > 1) every rank trains its
    share and only rank 0 returns a result (the others return None). ``clock`` measures the budget."""
    config = config or TrainConfig()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    import torch

    base = registry.models.get(base_ref)
    name = name or base.name
    general_name = str(general_eval) if general_eval else BUNDLED_GENERAL_EVAL  # what the lineage records
    general_eval = general_path(general_eval) if general_eval else bundled_general_eval()  # "auto" keeps it; reported
    has_dev = bool(config.domain_dev or split_by_query(pairs, config.eval_fraction, config.seed)[1])
    if config.interpolate == "auto" and not has_dev:
        raise UsageError(f"interpolate 'auto' needs a domain score: {len(pairs)} pairs at eval_fraction "
                         f"{config.eval_fraction} hold out no query; raise eval_fraction or give --domain-dev")
    config, recipe_rule, plan = resolve_recipe(config, [p.source for p in pairs], has_dev=has_dev, distributed=world > 1)
    margins, margin_rule = margins_to_try(config.margin, pairs, on_dev=plan.chosen_on_dev)
    replays, replay_rule = replays_to_try(config.replay_fraction, general_pairs, on_dev=plan.chosen_on_dev,
                                          sweeps=config.interpolate == "auto" and world == 1)
    named = config.replay_fraction == "auto" and replays[0] > 0  # a share the config does not hold: in the label

    def label(top_up: str, margin: float | None) -> str:
        rule = rule_label(top_up, margin)
        return with_replay(rule, replays[0]) if named else rule

    data = training_data(pairs, config, general_pairs,
                         top_up=label("random" if config.top_up == "auto" else config.top_up, margins[0]))
    top_ups, top_up_rule = top_ups_to_try(config, data, on_dev=plan.chosen_on_dev)
    rules = tuple(label(t, margins[0]) for t in top_ups) + tuple(label("random", m) for m in margins[1:])
    data_for = _data_variants(pairs, config, general_pairs, data)
    precision = mixed_precision(config.mixed_precision, torch.cuda.is_available())
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    model = registry.models.load(base.ref, device="cuda" if torch.cuda.is_available() else "cpu")
    base_state = base_copy(model, rank)
    dom_eval, domain_name = _domain_scorer(config, data)
    general = {"general_spearman": general_evaluator(general_eval)}  # the rails alpha must keep within bounds
    if config.general_retrieval:
        general["general_retrieval_ndcg@10"] = general_retrieval_evaluator(general_path(config.general_retrieval))
    base_per_query = {k: per_query_scores(ev, model) for k, ev in general.items() if k.endswith("_ndcg@10")}
    before = {"domain_ndcg@10": score(dom_eval, model)} | {
        k: float(base_per_query[k].mean()) if k in base_per_query else score(ev, model) for k, ev in general.items()}

    gather = world > 1  # in-batch negatives from every process's batch, not just this one's
    model_max_seq_length = model.max_seq_length
    train_tokens = min(config.max_seq_length or model_max_seq_length, model_max_seq_length)
    loss_used = resolve_loss(config, 2 + data.negatives_per_pair, train_tokens)
    loss = make_loss(loss_used, model, LossSetup(config.mini_batch_size, gather,
                                                 lambda: registry.models.load(base.ref, device=model.device)))
    if config.matryoshka_dims:
        loss = matryoshka(model, loss, config.matryoshka_dims)
    key = run_key(base, pair_hashes or [], config)
    judge = _judge(model_max_seq_length, base_state, config, before, dom_eval, general, base_per_query) \
        if len(replays) > 1 else None
    model.max_seq_length = train_tokens  # 128 by default: all-MiniLM-L6-v2 was itself trained at 128 tokens
    try:
        trials, search = _train(model, data_for, loss, config, plan, rules=rules, replays=replays[1:], judge=judge,
                                base_state=base_state,
                                dev=_at_full_length(dom_eval, model_max_seq_length) if dom_eval else None,
                                out_dir=registry.store.artifacts / ".training" / key, precision=precision,
                                world=world, clock=clock, on_log=on_log)
    finally:
        model.max_seq_length = model_max_seq_length  # evaluation and the saved model use the model's own limit
    if rank != 0:  # rank 0 interpolates, evaluates and registers
        return None
    return _register(registry, model, name, base, pairs, config, recipe_rule, plan, trials, search, base_state,
                     before=before, base_per_query=base_per_query, dom_eval=dom_eval, general=general,
                     domain_name=domain_name, general_name=general_name, data_for=data_for,
                     top_up_rule=top_up_rule, margin_rule=margin_rule, replay_rule=replay_rule, loss_used=loss_used,
                     train_tokens=train_tokens,
                     key=key, world=world, pair_hashes=pair_hashes)


def _register(registry, model, name, base, pairs, config, recipe_rule, plan, trials, search, base_state, *,
              before, base_per_query, dom_eval, general, domain_name, general_name, data_for, top_up_rule, margin_rule,
              replay_rule, loss_used,
              train_tokens, key, world, pair_hashes) -> TrainResult:
    """The interpolate and register steps: alpha chosen (or given), metrics and lineage recorded."""
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sweep: list[dict] = []
    alpha_reason = None
    if config.interpolate == "auto":
        sweep, alpha, alpha_reason = sweep_alpha(model, base_state, tuned_state, config, before, dom_eval, general,
                                                  base_per_query)
    else:
        alpha = float(config.interpolate) if config.interpolate is not None else None
    if alpha is not None:
        interpolate(model, base_state, tuned_state, alpha)
    chosen_point = next((s for s in sweep if s["alpha"] == alpha), None)
    after = ({k: chosen_point[k] for k in before} if chosen_point else
             {"domain_ndcg@10": score(dom_eval, model)} | {k: score(ev, model) for k, ev in general.items()})
    kept = search.kept() if search else trials[-1]
    data = data_for(kept.top_up)  # the training data of the trial kept
    span = mined_range(pairs)
    mined_margin = span[0] if span else None  # the margin `pairs mine` kept negatives at (unknown for older files)
    best = search.best if search else None
    trained_in = kept.trained_in
    chosen = {"lr": kept.lr, "epochs_max": plan.epochs, "step": best["step"] if best else kept.steps,
              "epoch": best["epoch"] if best else None, "dev_ndcg@10": best["domain_ndcg@10"] if best else None,
              "stopped": kept.stopped, "alpha": alpha, "top_up": data.top_up, "margin": data.margin or mined_margin,
              "replay_fraction": data.replay_fraction, "on_dev": plan.chosen_on_dev}
    recipe = {"epochs": plan.epochs, "steps": chosen["step"], "steps_trained": sum(t.steps for t in trials),
              "batch_size": config.batch_size * world, "lr": kept.lr,
              "lrs_tried": list(dict.fromkeys(t.lr for t in trials)),
              "warmup_ratio": config.warmup_ratio, "negatives_per_pair": data.negatives_per_pair,
              "train_tokens": train_tokens, "precision": {"no": "fp32"}.get(trained_in, trained_in), "loss": loss_used,
              "top_up": data.top_up, "top_up_rule": top_up_rule,
              "top_ups_tried": sorted({parse_rule(t.top_up)[0] for t in trials}),
              "margin": data.margin or mined_margin, "margin_rule": margin_rule,
              "margins_tried": list(dict.fromkeys(parse_rule(t.top_up)[1] or mined_margin for t in trials)),
              "replay_fraction": data.replay_fraction, "replayed_pairs": data.replayed,
              "replay_rule": "; ".join(filter(None, (replay_rule, search.replay_reason if search else None))),
              "replays_tried": sorted({data_for(t.top_up).replay_fraction for t in trials}),
              "rule": recipe_rule, "budget_minutes": config.budget_minutes if plan.chosen_on_dev else None,
              "seconds": round(sum(t.seconds for t in trials), 1)}
    metrics = {"before": before, "after": after, "alpha": alpha, "alpha_sweep": sweep, "alpha_reason": alpha_reason,
               "recipe": recipe, "recipe_search": search.to_dict() if search else None,
               "general_eval": general_name, "domain_scorer": domain_name,
               "dev_queries": len(dom_eval.queries) if dom_eval is not None else 0,
               "general_pairs": len(general["general_spearman"].sentences1),
               "general_retrieval": config.general_retrieval,
               "train_pairs": len(data.train), "held_out_pairs": len(data.held_out),
               "negatives_per_pair": data.negatives_per_pair, "pairs_padded_with_random_negatives": data.padded,
               "pairs_short_of_negatives": data.short, "pairs_dropped_short_of_negatives": data.dropped}
    params = asdict(config) | {"pairs_sha256": pair_hashes or [], "general_eval": general_name, "chosen": chosen,
                               "run_key": key, "resumed": any(t.resumed for t in trials), "world_size": world,
                               "global_batch_size": config.batch_size * world, "gather_across_devices": world > 1,
                               "trained_in": trained_in, "loss_used": loss_used}
    curve = [point for t in trials for point in t.curve]
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, safe_serialization=True)
        version = registry.models.register(
            name, tmp, parent=base.ref, params=params, metrics=metrics | {"curve": curve},
            notes=f"fine-tuned from {base.ref} on {len(pairs)} pairs" + (f", alpha {alpha}" if alpha is not None else ""),
        )
    return TrainResult(version, alpha, metrics, curve)
