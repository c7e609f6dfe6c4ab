"""Contrastive fine-tuning with the sentence-transformers trainer, with forgetting control.

* Loss: MultipleNegativesRankingLoss (in-batch negatives plus the mined hard negatives; van den Oord
  et al., 2018 / Henderson et al., 2017), or its GradCache form CachedMultipleNegativesRankingLoss (Gao
  et al., 2021): same objective and batch, memory bounded by ``mini_batch_size``. ``loss="auto"`` (the
  default) picks GradCache when a step would hold more than 8,192 tokens of activations at once
  (:func:`~embedops.trainer.config.resolve_loss`); the loss used is recorded. Batches come from the no-duplicates
  sampler; the seed is fixed; bf16 (fp16 where the GPU lacks bf16) on a GPU, and bf16 on a CPU when asked
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
from embedops.errors import UsageError
from embedops.registry import ModelVersion, Registry
from embedops.trainer.config import TrainConfig, TrainResult, resolve_loss
from embedops.trainer.evaluators import domain_evaluator, general_evaluator, labelled_dev_evaluator, score
from embedops.trainer.pairs import TrainingPair


def _mixed_precision(choice: str, cuda: bool) -> tuple[bool, bool]:
    """(bf16, fp16) for the trainer's arguments: ``auto`` means bf16 on a GPU that has it, else fp16
    there, and fp32 on a CPU (bf16 on a CPU without AVX512-BF16/AMX is slower than fp32)."""
    import torch

    if choice == "auto":
        bf16 = cuda and torch.cuda.is_bf16_supported()
        return bf16, cuda and not bf16
    if choice == "fp16" and not cuda:
        raise UsageError("fp16 training needs a GPU; on a CPU use bf16 (AVX512-BF16 or AMX) or fp32")
    return choice == "bf16", choice == "fp16"


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
    n_eval = int(len(queries) * fraction)
    held = set(queries[:n_eval])
    return [p for p in pairs if p.query not in held], [p for p in pairs if p.query in held]


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


def run_key(base: ModelVersion, pair_hashes: list[str], config: TrainConfig) -> str:
    return sha256_json({"base": base.digest, "pairs": pair_hashes, "config": asdict(config)})[:16]


def fit(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, name: str | None = None,
          general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None,
          config: TrainConfig | None = None, pair_hashes: list[str] | None = None,
          on_log: Callable[[dict], None] | None = None) -> TrainResult | None:
    """Fine-tune ``base_ref`` on ``pairs`` in this process and register the result as the next
    version of ``name``. Inside a torchrun process group (``WORLD_SIZE`` > 1) every rank trains its
    share and only rank 0 returns a result (the others return None)."""
    config = config or TrainConfig()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import TrainerCallback

    base = registry.models.get(base_ref)
    name = name or base.name
    if config.interpolate == "auto" and general_eval is None:
        raise UsageError("--interpolate auto needs a general benchmark (--general-eval STS.tsv) to stay within")
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
    n_neg = min(len(p.negatives) for p in train_pairs) if all(p.negatives for p in train_pairs) else 0
    if any(p.negatives for p in train_pairs) and n_neg == 0:  # replay pairs have none: borrow positives
        n_neg = min(len(p.negatives) for p in train_pairs if p.negatives)
        pool = [p.positive for p in train_pairs]
        train_pairs = [p if p.negatives else TrainingPair(p.query, p.positive, p.doc_id, rng.sample(pool, n_neg), p.source)
                       for p in train_pairs]
    columns: dict[str, list[str]] = {"anchor": [p.query for p in train_pairs], "positive": [p.positive for p in train_pairs]}
    for j in range(n_neg):
        columns[f"negative_{j + 1}"] = [p.negatives[j] for p in train_pairs]
    dataset = Dataset.from_dict(columns)

    model = registry.models.load(base.ref, device="cuda" if torch.cuda.is_available() else "cpu")
    base_state = _base_copy(model, rank)
    if config.domain_dev:
        dom_eval = labelled_dev_evaluator(Path(config.domain_dev), config.domain_dev_split, seed=config.seed)
    else:
        dom_eval = domain_evaluator(held_out, train_pairs, seed=config.seed) if held_out else None
    gen_eval = general_evaluator(general_eval) if general_eval else None
    before = {"domain_ndcg@10": score(dom_eval, model), "general_spearman": score(gen_eval, model)}

    gather = world > 1  # in-batch negatives from every process's batch, not just this one's
    loss_used = resolve_loss(config, 2 + n_neg, config.max_seq_length or model.max_seq_length)
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
                if on_log:
                    on_log(point)

    cuda = torch.cuda.is_available()
    steps_per_epoch = max(1, len(dataset) // (config.batch_size * world))
    restore_precision = _use_mixed_precision("bf16" if bf16 else "fp16" if fp16 else "no")
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(out_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size, learning_rate=config.lr, **_warmup(config.warmup_ratio),
            seed=config.seed, data_seed=config.seed, batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
            save_total_limit=1, logging_steps=max(1, steps_per_epoch // 10),
            eval_strategy="epoch" if dom_eval else "no", report_to=[], bf16=bf16, fp16=fp16,
            use_cpu=not cuda, dataloader_drop_last=False, disable_tqdm=True,
            ddp_backend=("nccl" if cuda else "gloo") if world > 1 else None,
        )
        model_max_seq_length = model.max_seq_length
        if config.max_seq_length:  # e.g. 128: all-MiniLM-L6-v2 was itself trained at 128 tokens
            model.max_seq_length = config.max_seq_length
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
    finally:
        restore_precision()

    model.max_seq_length = model_max_seq_length  # evaluation and the saved model use the model's own limit
    if rank != 0:  # rank 0 interpolates, evaluates and registers
        return None
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sweep = []
    if config.interpolate == "auto":
        for alpha in config.alphas:
            _interpolate(model, base_state, tuned_state, alpha)
            sweep.append({"alpha": alpha, "domain_ndcg@10": score(dom_eval, model),
                          "general_spearman": score(gen_eval, model)})
        allowed = [s for s in sweep if before["general_spearman"] - s["general_spearman"] <= config.max_general_drop]
        best = max(allowed or sweep[-1:], key=lambda s: s["domain_ndcg@10"])
        alpha = best["alpha"]
    else:
        alpha = float(config.interpolate) if config.interpolate is not None else None
    if alpha is not None:
        _interpolate(model, base_state, tuned_state, alpha)
    after = {"domain_ndcg@10": score(dom_eval, model), "general_spearman": score(gen_eval, model)}
    metrics = {"before": before, "after": after, "alpha": alpha, "alpha_sweep": sweep,
               "train_pairs": len(train_pairs), "held_out_pairs": len(held_out), "negatives_per_pair": n_neg}
    params = asdict(config) | {"pairs_sha256": pair_hashes or [], "general_eval": str(general_eval) if general_eval else None,
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
