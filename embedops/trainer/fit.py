"""Contrastive fine-tuning with the sentence-transformers trainer, with forgetting control.

* Loss: MultipleNegativesRankingLoss (in-batch negatives plus the mined hard negatives; van den Oord
  et al., 2018 / Henderson et al., 2017), or its GradCache form CachedMultipleNegativesRankingLoss (Gao
  et al., 2021): same objective and batch, memory bounded by ``mini_batch_size``. ``loss="auto"`` (the
  default) picks GradCache when a step would hold more than 8,192 tokens of activations at once
  (:func:`~embedops.trainer.config.resolve_loss`); the loss used is recorded. Batches never hold a
  known positive of a row's query as another row's text (:mod:`embedops.trainer.batching`), and a
  short pair's top-up negatives are never its query's positives; the seed is fixed; bf16 (fp16 where the GPU lacks bf16) on a GPU, and bf16 on a CPU when asked
  (``mixed_precision="bf16"``: about 1.5x faster per step on an AVX512-BF16 CPU, see docs/BENCHMARKS.md);
  checkpoints every epoch (or every ``save_steps`` steps, for long CPU runs), resumed when a run with
  the same inputs and settings is restarted; evaluation on a held-out slice of the pairs.
  ``max_seq_length`` caps the tokens per text while training only (all-MiniLM-L6-v2 was itself
  trained at 128): on long documents a step costs far less, and the registered version keeps the
  model's own limit for encoding.
* Replay: general pairs mixed into the training set at ``replay_fraction`` (so each shuffled batch
  holds that share in expectation).
* Weight interpolation with the base model (WiSE-FT, Wortsman et al., 2022; LM-Cocktail, Xiao et
  al., 2023): ``theta = alpha * tuned + (1 - alpha) * base``. ``interpolate="auto"`` sweeps alpha and
  keeps the value with the best domain score whose general score stays within ``max_general_drop``
  points of the base model's. The chosen alpha is recorded. The domain score comes from a held-out
  slice of the pairs, or, with ``domain_dev``, from a small labelled dev set (better for generated pairs).

The result is registered as a new model version whose lineage records the parent, the sha256 of the
pair files, every hyper-parameter, the seed, the training curve and the final metrics.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from embedops.checksums import sha256_json
from embedops.cpu import CpuFeatures, cpu_features
from embedops.errors import UsageError
from embedops.registry import ModelVersion, Registry
from embedops.trainer.batching import KnownPositives, batch_sampler_for, known_positives
from embedops.trainer.config import TrainConfig, TrainResult, resolve_loss, resolve_recipe
from embedops.trainer.evaluators import (BUNDLED_GENERAL_EVAL, bundled_general_eval, domain_evaluator, general_evaluator,
                                         labelled_dev_evaluator, score)
from embedops.trainer.pairs import TrainingPair


def _mixed_precision(choice: str, cuda: bool, cpu: CpuFeatures | None = None) -> tuple[bool, bool]:
    """(bf16, fp16) for the trainer's arguments: ``auto`` means bf16 on a GPU that has it, else fp16
    there; on a CPU, bf16 autocast where the CPU has AVX512-BF16 or AMX (detected, see
    :mod:`embedops.cpu`) and fp32 elsewhere (emulated bf16 is slower than fp32)."""
    import torch

    if choice == "auto":
        if not cuda:
            return (cpu or cpu_features()).bf16, False
        bf16 = torch.cuda.is_bf16_supported()
        return bf16, not bf16
    if choice == "fp16" and not cuda:
        raise UsageError("fp16 training needs a GPU; on a CPU use bf16 (AVX512-BF16 or AMX) or fp32")
    return choice == "bf16", choice == "fp16"


def _queries(n: int) -> str:
    """'1 query', '80 queries': the scorer's size as the report reads it."""
    return f"{n} {'query' if n == 1 else 'queries'}"


def _warmup(ratio: float) -> dict:
    """The warm-up share as the installed transformers takes it: ``warmup_steps`` as a float below 1
    on 5.x (``warmup_ratio`` is deprecated there), ``warmup_ratio`` on 4.x (whose steps are whole)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"warmup_steps": float(ratio)}
    return {"warmup_ratio": ratio}


def _split(pairs: list[TrainingPair], fraction: float, seed: int):
    queries = sorted({p.query for p in pairs})
    random.Random(seed).shuffle(queries)
    # A tenth of 809 queries is 80; a small set still holds out one query (when it has two) so a
    # default run keeps a domain score for choosing alpha.
    n_eval = max(1, int(len(queries) * fraction)) if fraction > 0 and len(queries) >= 2 else 0
    held = set(queries[:n_eval])
    return [p for p in pairs if p.query not in held], [p for p in pairs if p.query in held]


def _even_negatives(pairs: list[TrainingPair], rng: random.Random,
                    known: KnownPositives | None = None) -> tuple[int, list[TrainingPair], int]:
    """Give every pair as many negatives as the best-served pair has (the loss takes one column per
    negative). A pair short of mined negatives (the false-negative filter removed its candidates, or a
    replay pair that never had any) is topped up with other pairs' positives drawn at random: easy
    negatives, never a known positive of the pair's query (``known``, see
    :func:`~embedops.trainer.batching.known_positives`); the mined ones of every other pair are kept.
    Returns (negatives per pair, pairs, how many were topped up)."""
    n_neg = max((len(p.negatives) for p in pairs), default=0)
    if n_neg == 0:
        return 0, pairs, 0
    known = known if known is not None else known_positives((p.query, p.positive) for p in pairs)
    pool = sorted({p.positive for p in pairs})
    out, padded = [], 0
    for p in pairs:
        if len(p.negatives) < n_neg:
            padded += 1
            positives = known.get(p.query, frozenset()) | {p.positive}
            allowed = [t for t in pool if t not in positives]
            if not allowed:
                raise UsageError(f"every training text is a positive of the query {p.query[:60]!r}: there is "
                                 "nothing to use as its negative; add pairs of other queries")
            fresh = [t for t in rng.sample(allowed, min(len(allowed), n_neg)) if t not in p.negatives]
            while len(p.negatives) + len(fresh) < n_neg:  # a tiny pool: repeat rather than fail
                fresh.append(rng.choice(allowed))
            p = TrainingPair(p.query, p.positive, p.doc_id, list(p.negatives) + fresh[: n_neg - len(p.negatives)], p.source)
        out.append(p)
    return n_neg, out, padded


def _base_copy(model, rank: int) -> dict:
    """The base weights kept for interpolation: once, by rank 0 (the only rank that interpolates), in
    CPU memory, so no GPU holds a second copy of the model while it trains."""
    if rank != 0:
        return {}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _interpolate(model, base_state: dict, tuned_state: dict, alpha: float) -> None:
    import torch

    with torch.no_grad():
        mixed = {k: (alpha * v + (1 - alpha) * base_state[k].to(v.device)) if v.is_floating_point() else v
                 for k, v in tuned_state.items()}
        model.load_state_dict(mixed)


def _use_mixed_precision(choice: str) -> Callable[[], None]:
    """Make this run's mixed precision ("no", "bf16" or "fp16") the one accelerate uses; returns what
    puts the process back as it was.

    transformers writes the precision of a run into ``ACCELERATE_MIXED_PRECISION`` and accelerate
    keeps it in a process-wide state, so without this, every fp32 run after one bf16 run in the same
    process (a notebook, a server, a test session) would silently train in bf16: emulated, and many
    times slower, on a CPU without AVX512-BF16."""
    from accelerate.state import AcceleratorState

    previous = os.environ.get("ACCELERATE_MIXED_PRECISION")
    AcceleratorState._reset_state()
    os.environ["ACCELERATE_MIXED_PRECISION"] = choice

    def restore() -> None:
        AcceleratorState._reset_state()
        if previous is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = previous

    return restore


def _sweep_alpha(model, base_state: dict, tuned_state: dict, config: TrainConfig, before: dict, dom_eval, gen_eval):
    """WiSE-FT's alpha for ``interpolate="auto"``: the best domain score among the alphas whose general
    score stays within ``max_general_drop`` points of the base model's. Alphas are tried in the given
    order (1.0 down) and the sweep stops once two in a row score below the best allowed so far (the
    domain score has had one peak over alpha in every run measured, docs/BENCHMARKS.md); each alpha
    costs one domain and one general evaluation. Returns (sweep, alpha, reason in words)."""
    sweep: list[dict] = []
    best = None
    worse_in_a_row = 0
    for alpha in config.alphas:
        _interpolate(model, base_state, tuned_state, alpha)
        point = {"alpha": alpha, "domain_ndcg@10": score(dom_eval, model), "general_spearman": score(gen_eval, model)}
        point["allowed"] = before["general_spearman"] - point["general_spearman"] <= config.max_general_drop
        sweep.append(point)
        if point["allowed"] and (best is None or point["domain_ndcg@10"] > best["domain_ndcg@10"]):
            best, worse_in_a_row = point, 0
        elif best is not None:
            worse_in_a_row += 1
            if worse_in_a_row == 2:
                break
    tried = ", ".join(f"{s['alpha']:g}" for s in sweep)
    if best is None:  # every alpha tried loses too much general ability: the one nearest the base
        best = sweep[-1]
        return sweep, best["alpha"], (f"no alpha tried ({tried}) kept the general score within "
                                      f"{config.max_general_drop:g} point(s) of the base; took the lowest")
    return sweep, best["alpha"], (f"best {'held-out' if not config.domain_dev else 'dev'} nDCG@10 among alphas "
                                  f"{tried} whose general score stays within {config.max_general_drop:g} point(s) of the base")


def run_key(base: ModelVersion, pair_hashes: list[str], config: TrainConfig) -> str:
    return sha256_json({"base": base.digest, "pairs": pair_hashes, "config": asdict(config)})[:16]


def fit(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, name: str | None = None,
          general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None,
          config: TrainConfig | None = None, pair_hashes: list[str] | None = None,
          on_log: Callable[[dict], None] | None = None) -> TrainResult | None:
    """Fine-tune ``base_ref`` on ``pairs`` in this process and register the result as the next
    version of ``name``. Inside a torchrun process group (``WORLD_SIZE`` > 1) every rank trains its
    share and only rank 0 returns a result (the others return None)."""
    config, recipe_rule = resolve_recipe(config or TrainConfig(), [p.source for p in pairs])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from transformers import TrainerCallback

    base = registry.models.get(base_ref)
    name = name or base.name
    general_name = str(general_eval) if general_eval else BUNDLED_GENERAL_EVAL  # what the lineage records
    general_eval = general_eval or bundled_general_eval()  # "auto" stays within its score; reported before/after
    if not pairs:
        raise UsageError("no training pairs")
    bf16, fp16 = _mixed_precision(config.mixed_precision, torch.cuda.is_available())
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    train_pairs, held_out = _split(pairs, config.eval_fraction, config.seed)
    if config.interpolate == "auto" and not config.domain_dev and not held_out:
        raise UsageError(f"interpolate 'auto' needs a domain score: {len(pairs)} pairs at eval_fraction "
                         f"{config.eval_fraction} hold out no query; raise eval_fraction or give --domain-dev")
    rng = random.Random(config.seed)
    if general_pairs and config.replay_fraction > 0:
        n = int(round(config.replay_fraction / (1 - config.replay_fraction) * len(train_pairs)))
        replay = [rng.choice(general_pairs) for _ in range(n)]
        train_pairs = train_pairs + replay
    known = known_positives((p.query, p.positive) for p in train_pairs)  # never a negative of its own query
    n_neg, train_pairs, padded = _even_negatives(train_pairs, rng, known)
    columns: dict[str, list[str]] = {"anchor": [p.query for p in train_pairs], "positive": [p.positive for p in train_pairs]}
    for j in range(n_neg):
        columns[f"negative_{j + 1}"] = [p.negatives[j] for p in train_pairs]
    dataset = Dataset.from_dict(columns)

    model = registry.models.load(base.ref, device="cuda" if torch.cuda.is_available() else "cpu")
    base_state = _base_copy(model, rank)
    if config.domain_dev:
        dom_eval = labelled_dev_evaluator(Path(config.domain_dev), config.domain_dev_split, seed=config.seed)
        domain_name = f"{config.domain_dev} ({config.domain_dev_split}, {_queries(len(dom_eval.queries))})"
    else:
        dom_eval = domain_evaluator(held_out, train_pairs, seed=config.seed) if held_out else None
        domain_name = f"held-out pairs ({_queries(len(dom_eval.queries))})" if dom_eval else None
    gen_eval = general_evaluator(general_eval) if general_eval else None
    before = {"domain_ndcg@10": score(dom_eval, model), "general_spearman": score(gen_eval, model)}

    gather = world > 1  # in-batch negatives from every process's batch, not just this one's
    train_tokens = min(config.max_seq_length or model.max_seq_length, model.max_seq_length)
    loss_used = resolve_loss(config, 2 + n_neg, train_tokens)
    loss = (losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size, gather_across_devices=gather)
            if loss_used == "cached-mnrl" else losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather))
    key = run_key(base, pair_hashes or [], config)
    out_dir = registry.store.artifacts / ".training" / key
    curve: list[dict[str, float]] = []

    class Curve(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                point = {"step": state.global_step, "epoch": round(state.epoch or 0, 3), "loss": float(logs["loss"])}
                curve.append(point)
                if on_log:  # with the run's total, for a progress bar's ETA (the curve keeps the point only)
                    on_log(point | {"total_steps": state.max_steps})

    cuda = torch.cuda.is_available()
    steps_per_epoch = max(1, len(dataset) // (config.batch_size * world))
    restore_precision = _use_mixed_precision("bf16" if bf16 else "fp16" if fp16 else "no")
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(out_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size, learning_rate=config.lr, **_warmup(config.warmup_ratio),
            seed=config.seed, data_seed=config.seed, batch_sampler=batch_sampler_for(known),
            save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
            save_total_limit=1, logging_steps=max(1, steps_per_epoch // 10),
            eval_strategy="no", report_to=[], bf16=bf16, fp16=fp16,
            use_cpu=not cuda, dataloader_drop_last=False, disable_tqdm=True,
            ddp_backend=("nccl" if cuda else "gloo") if world > 1 else None,
        )
        model_max_seq_length = model.max_seq_length
        model.max_seq_length = train_tokens  # 128 by default: all-MiniLM-L6-v2 was itself trained at 128 tokens
        # The model card writer draws a "Computing widget examples" tqdm bar on stderr while the trainer
        # is set up (tqdm reads TQDM_DISABLE only when it is imported, so the variable cannot silence it).
        with contextlib.redirect_stderr(io.StringIO()):
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                                 evaluator=dom_eval, callbacks=[Curve()])
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for noisy in (PrinterCallback, ProgressCallback):  # progress goes through on_log, stdout stays clean
            trainer.remove_callback(noisy)
        resume = any(out_dir.glob("checkpoint-*"))
        trained_in = trainer.accelerator.mixed_precision  # what autocast really used: "no", "bf16" or "fp16"
        trainer.train(resume_from_checkpoint=True if resume else None)
        trained_steps = trainer.state.global_step
    finally:
        restore_precision()

    model.max_seq_length = model_max_seq_length  # evaluation and the saved model use the model's own limit
    if rank != 0:  # rank 0 interpolates, evaluates and registers
        return None
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sweep: list[dict] = []
    alpha_reason = None
    if config.interpolate == "auto":
        sweep, alpha, alpha_reason = _sweep_alpha(model, base_state, tuned_state, config, before, dom_eval, gen_eval)
    else:
        alpha = float(config.interpolate) if config.interpolate is not None else None
    if alpha is not None:
        _interpolate(model, base_state, tuned_state, alpha)
    chosen = next((s for s in sweep if s["alpha"] == alpha), None)
    after = ({"domain_ndcg@10": chosen["domain_ndcg@10"], "general_spearman": chosen["general_spearman"]} if chosen
             else {"domain_ndcg@10": score(dom_eval, model), "general_spearman": score(gen_eval, model)})
    recipe = {"epochs": config.epochs, "steps": trained_steps, "batch_size": config.batch_size * world, "lr": config.lr,
              "warmup_ratio": config.warmup_ratio, "negatives_per_pair": n_neg, "train_tokens": train_tokens,
              "precision": {"no": "fp32"}.get(trained_in, trained_in), "loss": loss_used, "rule": recipe_rule}
    metrics = {"before": before, "after": after, "alpha": alpha, "alpha_sweep": sweep, "alpha_reason": alpha_reason,
               "recipe": recipe, "general_eval": general_name, "domain_scorer": domain_name,
               "general_pairs": len(gen_eval.sentences1) if gen_eval is not None else 0,
               "train_pairs": len(train_pairs), "held_out_pairs": len(held_out), "negatives_per_pair": n_neg,
               "pairs_padded_with_random_negatives": padded}
    params = asdict(config) | {"pairs_sha256": pair_hashes or [], "general_eval": general_name,
                               "run_key": key, "resumed": resume, "world_size": world,
                               "global_batch_size": config.batch_size * world, "gather_across_devices": gather,
                               "trained_in": trained_in, "loss_used": loss_used}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, safe_serialization=True)
        version = registry.models.register(
            name, tmp, parent=base.ref, params=params, metrics=metrics | {"curve": curve},
            notes=f"fine-tuned from {base.ref} on {len(pairs)} pairs" + (f", alpha {alpha}" if alpha is not None else ""),
        )
    return TrainResult(version, alpha, metrics, curve)
