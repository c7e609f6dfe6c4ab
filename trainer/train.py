"""Contrastive fine-tuning with the sentence-transformers trainer, with forgetting control.

* Loss: MultipleNegativesRankingLoss (in-batch negatives plus the mined hard negatives; van den Oord
  et al., 2018 / Henderson et al., 2017), or CachedMultipleNegativesRankingLoss (GradCache, Gao et
  al., 2021) for large effective batches on small memory. Batches come from the no-duplicates
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

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedops.beir import read_qrels, read_queries, read_sts
from embedops.errors import UsageError
from embedops.registry import ModelVersion, Registry
from embedops.trainer.pairs import TrainingPair

ALPHAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    seed: int = 0
    loss: str = "mnrl"  # or "cached-mnrl"
    mini_batch_size: int = 16
    replay_fraction: float = 0.0
    eval_fraction: float = 0.1
    interpolate: str | float | None = None  # None, an alpha in (0, 1], or "auto"
    max_general_drop: float = 1.0
    max_steps: int = -1
    alphas: tuple[float, ...] = ALPHAS  # interpolation weights tried by "auto"
    devices: int = 1  # > 1: distributed data parallel over that many processes (trainer/distributed.py)
    domain_dev: str | None = None  # a BEIR directory with a few labelled queries: scores the domain for "auto"
    domain_dev_split: str = "dev"
    mixed_precision: str = "auto"  # auto (bf16/fp16 on a GPU, fp32 on a CPU), bf16, fp16 (GPU only) or fp32
    max_seq_length: int | None = None  # token limit while training (None: the model's own); the saved model keeps its own
    save_steps: int | None = None  # checkpoint every N steps (None: at each epoch's end); a rerun resumes from the last

    def __post_init__(self):
        if self.loss not in ("mnrl", "cached-mnrl"):
            raise UsageError(f"unknown loss {self.loss!r}: use mnrl or cached-mnrl")
        if not 0 <= self.replay_fraction < 1:
            raise UsageError("replay fraction must be in [0, 1)")
        if isinstance(self.interpolate, str) and self.interpolate != "auto":
            try:
                self.interpolate = float(self.interpolate)
            except ValueError:
                raise UsageError("--interpolate takes 'auto' or an alpha in (0, 1]") from None
        if isinstance(self.interpolate, float) and not 0 < self.interpolate <= 1:
            raise UsageError("--interpolate alpha must be in (0, 1]")
        if self.devices < 1:
            raise UsageError("--devices must be at least 1")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise UsageError("--max-seq-length must be a positive number of tokens")
        if self.save_steps is not None and self.save_steps < 1:
            raise UsageError("--save-steps must be at least 1")
        if not 0 <= self.eval_fraction < 1:
            raise UsageError("eval_fraction (the held-out share of the pairs) must be in [0, 1)")
        if self.interpolate == "auto" and not self.domain_dev and self.eval_fraction == 0:
            raise UsageError("interpolate 'auto' chooses alpha by a domain score and there would be none: keep a "
                             "held-out share of the pairs (eval_fraction > 0) or give a labelled dev set (--domain-dev)")
        if self.mixed_precision not in ("auto", "bf16", "fp16", "fp32"):
            raise UsageError(f"unknown mixed precision {self.mixed_precision!r}: use auto, bf16, fp16 or fp32")


@dataclass
class TrainResult:
    model: ModelVersion
    alpha: float | None
    metrics: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)


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


def _split(pairs: list[TrainingPair], fraction: float, seed: int):
    queries = sorted({p.query for p in pairs})
    random.Random(seed).shuffle(queries)
    n_eval = int(len(queries) * fraction)
    held = set(queries[:n_eval])
    return [p for p in pairs if p.query not in held], [p for p in pairs if p.query in held]


def _retrieval_evaluator(queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, set[str]]):
    """The domain score of both evaluators below: nDCG@10 (the primary metric) and friends."""
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    return InformationRetrievalEvaluator(queries, corpus, relevant, name="domain", ndcg_at_k=[10], mrr_at_k=[10],
                                         accuracy_at_k=[1], precision_recall_at_k=[10], map_at_k=[10],
                                         show_progress_bar=False, batch_size=64)


def domain_evaluator(held_out: list[TrainingPair], train: list[TrainingPair], max_corpus: int = 2000, seed: int = 0):
    """Retrieval on held-out queries (nDCG@10) over their positives and hard negatives, plus train
    positives as distractors up to ``max_corpus`` texts in all (it runs once per interpolation weight,
    so it must stay small: re-encoding every text seen would dominate the run on large pair sets)."""
    corpus: dict[str, str] = {}

    def cid(text: str) -> str:
        key = hashlib.sha1(text.encode()).hexdigest()[:16]
        corpus[key] = text
        return key

    queries, relevant = {}, {}
    for p in held_out:
        qid = f"q{hashlib.sha1(p.query.encode()).hexdigest()[:12]}"
        queries[qid] = p.query
        relevant.setdefault(qid, set()).add(cid(p.positive))
        for n in p.negatives:
            cid(n)
    distractors = sorted({p.positive for p in train} - set(corpus.values()))
    random.Random(seed).shuffle(distractors)
    for text in distractors[: max(0, max_corpus - len(corpus))]:
        cid(text)
    return _retrieval_evaluator(queries, corpus, relevant)


def labelled_dev_evaluator(beir_dir: Path, split: str = "dev", max_corpus: int = 2000, seed: int = 0):
    """Retrieval (nDCG@10) on a small labelled dev set: a BEIR directory's ``split`` queries over their
    relevant documents plus random distractors from its corpus, ``max_corpus`` texts in all.

    Generated pairs reward learning the generator's task: a held-out slice of them keeps rising as the
    model drifts from what users type, so ``interpolate="auto"`` picks alpha 1.0. A few dozen real
    queries choose alpha far better (docs/BENCHMARKS.md, SciFact). Used for scoring only, never trained on.
    """
    from embedops.corpus import doc_text, read_documents

    beir_dir = Path(beir_dir)
    qrels = read_qrels(beir_dir / "qrels" / f"{split}.tsv")
    queries = read_queries(beir_dir, only=set(qrels))
    docs = {d.id: doc_text(d.title, d.text) for d in read_documents(beir_dir)}
    relevant = {q: {d for d, g in rel.items() if g > 0 and d in docs} for q, rel in qrels.items() if q in queries}
    relevant = {q: r for q, r in relevant.items() if r}
    if not relevant:
        raise UsageError(f"{beir_dir}: no {split} query has a relevant document in the corpus")
    needed = set().union(*relevant.values())
    others = sorted(set(docs) - needed)
    random.Random(seed).shuffle(others)
    corpus = {d: docs[d] for d in sorted(needed) + others[: max(0, max_corpus - len(needed))]}
    return _retrieval_evaluator({q: queries[q] for q in relevant}, corpus, relevant)


def general_evaluator(sts_path: Path):
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    s1, s2, scores = read_sts(sts_path)
    top = max(scores) or 1.0
    return EmbeddingSimilarityEvaluator(s1, s2, [s / top for s in scores], name="general", show_progress_bar=False)


def _score(evaluator, model) -> float:
    if evaluator is None:
        return float("nan")
    result = evaluator(model)
    return 100 * float(result[evaluator.primary_metric])


def _interpolate(model, base_state: dict, tuned_state: dict, alpha: float) -> None:
    import torch

    with torch.no_grad():
        mixed = {k: (alpha * v + (1 - alpha) * base_state[k]) if v.is_floating_point() else v
                 for k, v in tuned_state.items()}
        model.load_state_dict(mixed)


def run_key(base: ModelVersion, pair_hashes: list[str], config: TrainConfig) -> str:
    blob = json.dumps({"base": base.digest, "pairs": pair_hashes, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(registry: Registry, base_ref: str, pairs: list[TrainingPair], *, name: str | None = None,
          general_pairs: list[TrainingPair] | None = None, general_eval: Path | None = None,
          config: TrainConfig | None = None, pair_hashes: list[str] | None = None,
          on_log: Callable[[dict], None] | None = None) -> TrainResult | None:
    """Fine-tune ``base_ref`` on ``pairs`` and register the result as the next version of ``name``.

    With ``config.devices > 1`` this starts that many processes (see :mod:`embedops.trainer.distributed`);
    inside such a process group only rank 0 returns a result (the others return None).
    """
    config = config or TrainConfig()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.devices > 1 and world == 1:
        from embedops.trainer.distributed import launch

        return launch(registry, base_ref, pairs, devices=config.devices, name=name, general_pairs=general_pairs,
                      general_eval=general_eval, config=config, pair_hashes=pair_hashes, on_log=on_log)
    rank = int(os.environ.get("RANK", "0"))
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
    from sentence_transformers.training_args import BatchSamplers
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
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if config.domain_dev:
        dom_eval = labelled_dev_evaluator(Path(config.domain_dev), config.domain_dev_split, seed=config.seed)
    else:
        dom_eval = domain_evaluator(held_out, train_pairs, seed=config.seed) if held_out else None
    gen_eval = general_evaluator(general_eval) if general_eval else None
    before = {"domain_ndcg@10": _score(dom_eval, model), "general_spearman": _score(gen_eval, model)}

    gather = world > 1  # in-batch negatives from every process's batch, not just this one's
    loss = (losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size, gather_across_devices=gather)
            if config.loss == "cached-mnrl" else losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather))
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
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.lr, warmup_ratio=config.warmup_ratio,
        seed=config.seed, data_seed=config.seed, batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
        save_total_limit=1, logging_steps=max(1, steps_per_epoch // 10),
        eval_strategy="epoch" if dom_eval else "no", report_to=[], bf16=bf16, fp16=fp16,
        use_cpu=not cuda, dataloader_drop_last=False, disable_tqdm=True,
        ddp_backend=("nccl" if cuda else "gloo") if world > 1 else None,
    )
    previous_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # model-card widget bars would garble the CLI's progress lines; restored below
    model_max_seq_length = model.max_seq_length
    if config.max_seq_length:  # e.g. 128: all-MiniLM-L6-v2 was itself trained at 128 tokens
        model.max_seq_length = config.max_seq_length
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         evaluator=dom_eval, callbacks=[Curve()])
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):  # progress goes through on_log, stdout stays clean
        trainer.remove_callback(noisy)
    resume = any(out_dir.glob("checkpoint-*"))
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    finally:
        if previous_tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous_tqdm

    model.max_seq_length = model_max_seq_length  # evaluation and the saved model use the model's own limit
    if rank != 0:  # rank 0 interpolates, evaluates and registers
        return None
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sweep = []
    if config.interpolate == "auto":
        for alpha in config.alphas:
            _interpolate(model, base_state, tuned_state, alpha)
            sweep.append({"alpha": alpha, "domain_ndcg@10": _score(dom_eval, model),
                          "general_spearman": _score(gen_eval, model)})
        allowed = [s for s in sweep if before["general_spearman"] - s["general_spearman"] <= config.max_general_drop]
        best = max(allowed or sweep[-1:], key=lambda s: s["domain_ndcg@10"])
        alpha = best["alpha"]
    else:
        alpha = float(config.interpolate) if config.interpolate is not None else None
    if alpha is not None:
        _interpolate(model, base_state, tuned_state, alpha)
    after = {"domain_ndcg@10": _score(dom_eval, model), "general_spearman": _score(gen_eval, model)}
    metrics = {"before": before, "after": after, "alpha": alpha, "alpha_sweep": sweep,
               "train_pairs": len(train_pairs), "held_out_pairs": len(held_out), "negatives_per_pair": n_neg}
    params = asdict(config) | {"pairs_sha256": pair_hashes or [], "general_eval": str(general_eval) if general_eval else None,
                               "run_key": key, "resumed": resume, "world_size": world,
                               "global_batch_size": config.batch_size * world, "gather_across_devices": gather}
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, safe_serialization=True)
        version = registry.models.register(
            name, tmp, parent=base.ref, params=params, metrics=metrics | {"curve": curve},
            notes=f"fine-tuned from {base.ref} on {len(pairs)} pairs" + (f", alpha {alpha}" if alpha is not None else ""),
        )
    return TrainResult(version, alpha, metrics, curve)
