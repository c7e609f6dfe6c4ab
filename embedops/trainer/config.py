"""Settings and result of a fine-tuning run (:func:`embedops.trainer.train`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from embedops.data import GENERAL_DEFINITIONS
from embedops.errors import UsageError
from embedops.registry import ModelVersion

ALPHAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
# "auto" switches to GradCache when one step would push more tokens than this through the model at
# once: MNRL keeps every text's activations of a step for the backward pass (batch 32 with 3
# negatives at 256 tokens is 40,960 tokens: 11-15 GB on a CPU); GradCache keeps mini_batch_size texts'.
FULL_BATCH_TOKEN_LIMIT = 8192


# The default recipe: the learning rate and the number of steps are chosen on a tenth of the user's
# queries held out (never trained on): each rate of LR_GRID trains a one-epoch probe, the best goes on
# with early stopping (dev nDCG@10 twice an epoch, PATIENCE evaluations without progress) up to
# MAX_EPOCHS, all within the time budget (embedops.trainer.select); then WiSE-FT's alpha is chosen on the
# same queries while the general scores stay within 1 point of the base model's (the bundled STS set by
# its mean, the bundled definitions rail by the upper end of the one-sided 95% interval of its per-query
# drop), the best dev score among those (ALPHA_RULE; the one-standard-error rule scored lower on held-out
# halves of dev, docs/BENCHMARKS.md). Batch 32, the mined negatives, 128 training tokens, 10% warm-up.
ALPHA_RULES = ("best", "one-se")  # one-se: the alpha nearest the base within one standard error of the best
ALPHA_RULE = "best"
DEFAULT_TRAIN_TOKENS = 128  # all-MiniLM-L6-v2 was itself trained at 128 tokens
# The grid brackets the rates of the sentence-transformers examples and the runs in docs/BENCHMARKS.md:
# 5e-5 (the labelled recipe before it was chosen on dev), 2e-5 (generated pairs), and 1e-4.
LR_GRID = (2e-5, 5e-5, 1e-4)
MAX_EPOCHS = 3
PATIENCE = 2  # dev evaluations in a row without a better score: one epoch at two evaluations an epoch
EVALS_PER_EPOCH = 2
# Sized for SciFact's 919 labelled pairs on a 2-core AMX CPU in bf16 (docs/BENCHMARKS.md, "The recipe
# chosen on dev"): 3 one-epoch probes of 26 steps and the chosen rate's 64 more steps took 20.8 of the
# 25 minutes (about 7 s a step with the dev evaluations); the whole `train` command, 22 minutes.
DEFAULT_BUDGET_MINUTES = 25.0

# The fixed recipes, for runs with nothing to choose on (no held-out queries and no --domain-dev) and
# for distributed runs (each process would have to agree on every early stop).
LABELLED_RECIPE = {"epochs": 2, "lr": 5e-5}
# Generated pairs are many (one or more per document) and their held-out slice rewards the generator's
# style: one epoch at 2e-5 is the recipe of the generated-pairs runs in docs/BENCHMARKS.md, (b).
GENERATED_RECIPE = {"epochs": 1, "lr": 2e-5}
LABELLED_SOURCES = ("labels", "file")  # import_beir's pairs, and JSONL lines that name no source
# With generated pairs only and no labelled dev set, "auto" scores alphas on a held-out slice of the
# generated pairs, which prefers no interpolation at all (docs/BENCHMARKS.md, (b')); in the H200 probes
# (docs/results/gpu-probe-h200-2026-11-2[67].jsonl) labelled dev queries chose 0.6 for six of the nine
# generated-pairs recipes swept (0.5, 0.7, 0.8 once each) and never 1.0 where it was tried (it gave a
# third of the lift). So that sweep starts here.
GENERATED_MAX_ALPHA = 0.6

# What fills a pair that the false-negative filter of `pairs mine` left short of mined negatives (the loss
# takes as many negative columns for every pair): "random", other pairs' positives drawn at random (never
# a known positive of the pair's query: easy negatives, but where each document is relevant to many
# queries, often unlabelled positives); "drop", the pair is left out of training (the other pairs keep
# their hard negatives). "auto" takes "random" unless more than TOP_UP_PROBE_SHARE of the pairs are short:
# then the recipe search probes both at the best learning rate and dev chooses. Below that share the two
# training sets differ in few pairs and a probe is not worth its time (3.8 of the 25 budget minutes on
# SciFact, and every other probe's share shrinks from a quarter to a fifth: docs/BENCHMARKS.md). The share
# is a cost rule, never tuned on a score (SciFact's labelled pairs are 13% short).
TOP_UPS = ("random", "drop")
TOP_UP_PROBE_SHARE = 0.25

# A dev set of fewer queries still steers the run (there is nothing better to choose on), but the train
# report says its choices are noise: per-query nDCG@10 differences between two checkpoints spread by 10-20
# points, so 20 queries resolve about +/-4-9 points (1.96 s / sqrt(n)), and fewer resolve nothing a
# recipe changes. A set with few queries and many documents each (TREC DL 2019: 43 queries, 95 judged
# passages each) holds out 4 queries at the default eval_fraction. A reporting threshold, not a tuned one.
FEW_DEV_QUERIES = 20


@dataclass
class TrainConfig:
    epochs: int | None = None  # None: chosen on dev up to MAX_EPOCHS; given with lr: trained as given (resolve_recipe)
    batch_size: int = 32
    lr: float | None = None  # None: chosen on dev from lr_grid; given: the only rate tried
    warmup_ratio: float = 0.1
    seed: int = 0
    loss: str = "auto"  # mnrl, cached-mnrl, or auto: cached-mnrl when a step's tokens exceed FULL_BATCH_TOKEN_LIMIT
    mini_batch_size: int = 16
    replay_fraction: str | float = "auto"  # share of general pairs (fit's general_pairs) in training; auto: dev chooses (trainer/replay.py)
    eval_fraction: float = 0.1
    interpolate: str | float | None = "auto"  # "auto" (sweep alphas), an alpha in (0, 1], or None (keep the tuned weights)
    max_general_drop: float = 1.0
    max_steps: int = -1
    alphas: tuple[float, ...] = ALPHAS  # interpolation weights tried by "auto"
    alpha_rule: str = ALPHA_RULE  # "auto"'s choice among the allowed alphas: best (dev score) or one-se
    devices: int = 1  # > 1: distributed data parallel over that many processes (trainer/distributed.py)
    domain_dev: str | None = None  # a BEIR directory with a few labelled queries: scores the domain for "auto"
    domain_dev_split: str = "dev"
    mixed_precision: str = "auto"  # auto (bf16/fp16 on a GPU; bf16 on a CPU with AVX512-BF16 or AMX, else fp32), bf16, fp16 (GPU only) or fp32
    max_seq_length: int | None = DEFAULT_TRAIN_TOKENS  # token limit while training, capped at the model's own (None: the model's own); the saved model keeps its own
    save_steps: int | None = None  # checkpoint every N steps (None: at each epoch's end); a rerun resumes from the last
    general_retrieval: str | None = GENERAL_DEFINITIONS  # a BEIR directory (or bundled: name) also kept within max_general_drop (95% upper bound); None: off
    budget_minutes: float = DEFAULT_BUDGET_MINUTES  # time the recipe search may train and score dev
    lr_grid: tuple[float, ...] = LR_GRID  # learning rates tried when lr is None
    patience: int = PATIENCE  # dev evaluations without a better score before stopping (0: never)
    evals_per_epoch: int = EVALS_PER_EPOCH
    matryoshka_dims: tuple[int, ...] | None = None  # train with MatryoshkaLoss over these dims (largest first)
    top_up: str = "auto"  # pairs short of mined negatives: auto (dev chooses when many are), random or drop (TOP_UPS)
    margin: str | float = "auto"  # mined candidates filtered again at this margin; auto: as mined, or dev chooses (trainer/margins.py)

    def __post_init__(self):
        from embedops.trainer.losses import registered_losses

        if self.loss != "auto" and self.loss not in registered_losses():
            raise UsageError(f"unknown loss {self.loss!r}: use auto, {', '.join(registered_losses())}")
        if isinstance(self.general_retrieval, str) and self.general_retrieval.lower() in ("", "none", "off"):
            self.general_retrieval = None
        if not self.budget_minutes > 0:
            raise UsageError("--budget must be a positive number of minutes")
        if not self.lr_grid or any(not lr > 0 for lr in self.lr_grid):
            raise UsageError("the learning-rate grid needs at least one rate, each above 0")
        if self.lr is not None and not self.lr > 0:
            raise UsageError("--lr must be above 0")
        if self.epochs is not None and self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.patience < 0 or self.evals_per_epoch < 1:
            raise UsageError("patience must be 0 or more and evals_per_epoch at least 1")
        if self.mini_batch_size < 1:
            raise UsageError("--mini-batch-size must be at least 1")
        if self.replay_fraction != "auto":
            try:
                fraction = math.nan if isinstance(self.replay_fraction, bool) else float(self.replay_fraction)
            except (TypeError, ValueError):
                fraction = math.nan
            if not 0 <= fraction < 1:  # NaN too
                raise UsageError(f"--replay takes 'auto' or a share in [0, 1), got {self.replay_fraction!r}")
            self.replay_fraction = fraction
        if isinstance(self.interpolate, str) and self.interpolate.lower() in ("none", "off"):
            self.interpolate = None
        if isinstance(self.interpolate, str) and self.interpolate != "auto":
            try:
                self.interpolate = float(self.interpolate)
            except ValueError:
                raise UsageError("--interpolate takes 'auto', an alpha in (0, 1], or 'none'") from None
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
                             "held-out share of the pairs (eval_fraction > 0), give a labelled dev set (--domain-dev), "
                             "or turn interpolation off (--interpolate none)")
        if self.matryoshka_dims is not None:
            dims = tuple(self.matryoshka_dims)
            if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims) \
                    or list(dims) != sorted(set(dims), reverse=True):
                raise UsageError(f"--matryoshka-dims takes distinct positive dimensions, largest first (e.g. "
                                 f"384,256,128,64), got {','.join(map(str, dims)) or 'none'}")
            self.matryoshka_dims = dims
        if self.alpha_rule not in ALPHA_RULES:
            raise UsageError(f"unknown alpha rule {self.alpha_rule!r}: use {' or '.join(ALPHA_RULES)}")
        if self.top_up not in ("auto", *TOP_UPS):
            raise UsageError(f"unknown top-up rule {self.top_up!r}: use auto, {', '.join(TOP_UPS)}")
        if self.margin != "auto":
            try:
                margin = math.nan if isinstance(self.margin, bool) else float(self.margin)
            except (TypeError, ValueError):
                margin = math.nan
            if not margin > 0:  # NaN too
                raise UsageError(f"--margin takes 'auto' or a number above 0, got {self.margin!r}")
            self.margin = margin
        if self.mixed_precision not in ("auto", "bf16", "fp16", "fp32"):
            raise UsageError(f"unknown mixed precision {self.mixed_precision!r}: use auto, bf16, fp16 or fp32")


@dataclass(frozen=True)
class RecipePlan:
    """What a run will try: the learning rates, the epoch limit, and whether dev chooses (early
    stopping and the best rate) or the recipe is trained as it stands."""

    lrs: tuple[float, ...]
    epochs: int
    chosen_on_dev: bool


def resolve_recipe(config: TrainConfig, sources: list[str], *, has_dev: bool = True,
                   distributed: bool = False) -> tuple[TrainConfig, str, RecipePlan]:
    """What a run trains, by the documented rule:

    * ``epochs`` and ``lr`` both given: trained as given, no choice on dev;
    * otherwise, with a dev score (held-out queries or ``domain_dev``) in one process: the rates of
      ``lr_grid`` (or the given ``lr``) and up to :data:`MAX_EPOCHS` (or the given ``epochs``)
      epochs, chosen on dev (:mod:`embedops.trainer.select`);
    * with nothing to choose on, or on several processes: the fixed recipe, 2 epochs at 5e-5, or one
      at 2e-5 when every pair was generated (``source`` other than ``labels`` or ``file``).

    When every pair was generated, ``interpolate`` is "auto" with the default alphas and there is no
    ``domain_dev``, only alphas up to :data:`GENERATED_MAX_ALPHA` are tried. Returns the config (its
    unset fields filled only for a fixed recipe), the rule applied in words, and the plan."""
    from dataclasses import replace

    generated = bool(sources) and all(s not in LABELLED_SOURCES for s in sources)
    kind = "every pair generated" if generated else "labelled pairs"
    if config.epochs is not None and config.lr is not None:
        rule, plan = "as given", RecipePlan((config.lr,), config.epochs, False)
    elif has_dev and not distributed:
        rule = f"{kind}; lr and steps chosen on dev"
        plan = RecipePlan((config.lr,) if config.lr is not None else tuple(config.lr_grid),
                          config.epochs or MAX_EPOCHS, True)
    else:
        recipe = GENERATED_RECIPE if generated else LABELLED_RECIPE
        config = replace(config, epochs=config.epochs or recipe["epochs"], lr=config.lr or recipe["lr"])
        why = "several processes" if distributed else "no dev score"
        rule, plan = f"{kind}; fixed recipe ({why})", RecipePlan((config.lr,), config.epochs, False)
    if generated and config.interpolate == "auto" and not config.domain_dev and config.alphas == ALPHAS:
        config = replace(config, alphas=tuple(a for a in ALPHAS if a <= GENERATED_MAX_ALPHA))
        rule += f"; alphas <= {GENERATED_MAX_ALPHA:g} without a labelled dev set"
    return config, rule, plan


def resolve_loss(config: TrainConfig, texts_per_example: int, max_seq_length: int) -> str:
    """The loss a run uses: ``config.loss``, or for ``auto``, MultipleNegativesRankingLoss while a step
    fits in :data:`FULL_BATCH_TOKEN_LIMIT` tokens and its GradCache form (CachedMultipleNegativesRankingLoss,
    Gao et al., 2021) beyond. Both optimise the same objective with the same in-batch negatives and
    effective batch; GradCache embeds ``mini_batch_size`` texts at a time and trades a second forward
    pass for memory that no longer grows with the batch."""
    if config.loss != "auto":
        return config.loss
    tokens = config.batch_size * texts_per_example * max_seq_length
    return "cached-mnrl" if tokens > FULL_BATCH_TOKEN_LIMIT else "mnrl"


@dataclass
class TrainResult:
    model: ModelVersion
    alpha: float | None
    metrics: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
