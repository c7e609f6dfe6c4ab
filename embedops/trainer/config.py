"""Settings and result of a fine-tuning run (:func:`embedops.trainer.train`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedops.errors import UsageError
from embedops.registry import ModelVersion

ALPHAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
LOSSES = ("auto", "mnrl", "cached-mnrl")
# "auto" switches to GradCache when one step would push more tokens than this through the model at
# once: MNRL keeps every text's activations of a step for the backward pass (batch 32 with 3
# negatives at 256 tokens is 40,960 tokens: 11-15 GB on a CPU); GradCache keeps mini_batch_size texts'.
FULL_BATCH_TOKEN_LIMIT = 8192


# The default recipe (docs/BENCHMARKS.md, "embedops train with no flags"): 2 epochs at lr 5e-5 with 10%
# warm-up, batch 32, the mined negatives, 128 training tokens, a tenth of the queries held out to score
# the domain, and WiSE-FT interpolation with the alpha chosen on that held-out slice while the general
# score (the bundled general set unless one is given) stays within 1 point of the base model's.
DEFAULT_TRAIN_TOKENS = 128  # all-MiniLM-L6-v2 was itself trained at 128 tokens


LABELLED_RECIPE = {"epochs": 2, "lr": 5e-5}
# Generated pairs are many (one or more per document) and their held-out slice rewards the generator's
# style: one epoch at 2e-5 is the recipe of the generated-pairs runs in docs/BENCHMARKS.md, (b). On
# labelled dev queries the labelled recipe (2 epochs, 5e-5) did no better from the same generated pairs
# (docs/BENCHMARKS.md, "Epochs and lr for generated pairs, on dev only") at 1.6x the training time.
GENERATED_RECIPE = {"epochs": 1, "lr": 2e-5}
LABELLED_SOURCES = ("labels", "file")  # import_beir's pairs, and JSONL lines that name no source
# With generated pairs only and no labelled dev set, "auto" scores alphas on a held-out slice of the
# generated pairs, which prefers no interpolation at all (docs/BENCHMARKS.md, (b')); in the H200 probes
# (docs/results/gpu-probe-h200-2026-11-2[67].jsonl) labelled dev queries chose 0.6 for six of the nine
# generated-pairs recipes swept (0.5, 0.7, 0.8 once each) and never 1.0 where it was tried (it gave a
# third of the lift). So that sweep starts here.
GENERATED_MAX_ALPHA = 0.6


@dataclass
class TrainConfig:
    epochs: int | None = None  # None: 2 for labelled pairs, 1 when every pair is generated (resolve_recipe)
    batch_size: int = 32
    lr: float | None = None  # None: 5e-5 for labelled pairs, 2e-5 when every pair is generated
    warmup_ratio: float = 0.1
    seed: int = 0
    loss: str = "auto"  # mnrl, cached-mnrl, or auto: cached-mnrl when a step's tokens exceed FULL_BATCH_TOKEN_LIMIT
    mini_batch_size: int = 16
    replay_fraction: float = 0.0
    eval_fraction: float = 0.1
    interpolate: str | float | None = "auto"  # "auto" (sweep alphas), an alpha in (0, 1], or None (keep the tuned weights)
    max_general_drop: float = 1.0
    max_steps: int = -1
    alphas: tuple[float, ...] = ALPHAS  # interpolation weights tried by "auto"
    devices: int = 1  # > 1: distributed data parallel over that many processes (trainer/distributed.py)
    domain_dev: str | None = None  # a BEIR directory with a few labelled queries: scores the domain for "auto"
    domain_dev_split: str = "dev"
    mixed_precision: str = "auto"  # auto (bf16/fp16 on a GPU; bf16 on a CPU with AVX512-BF16 or AMX, else fp32), bf16, fp16 (GPU only) or fp32
    max_seq_length: int | None = DEFAULT_TRAIN_TOKENS  # token limit while training, capped at the model's own (None: the model's own); the saved model keeps its own
    save_steps: int | None = None  # checkpoint every N steps (None: at each epoch's end); a rerun resumes from the last

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise UsageError(f"unknown loss {self.loss!r}: use {', '.join(LOSSES)}")
        if self.mini_batch_size < 1:
            raise UsageError("--mini-batch-size must be at least 1")
        if not 0 <= self.replay_fraction < 1:
            raise UsageError("replay fraction must be in [0, 1)")
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
        if self.mixed_precision not in ("auto", "bf16", "fp16", "fp32"):
            raise UsageError(f"unknown mixed precision {self.mixed_precision!r}: use auto, bf16, fp16 or fp32")


def resolve_recipe(config: TrainConfig, sources: list[str]) -> tuple[TrainConfig, str]:
    """Fill the settings left to the data by the documented rule. ``epochs`` and ``lr`` left as None:
    the labelled recipe (2 epochs, lr 5e-5) unless every pair was generated (``source`` other than
    ``labels`` or ``file``), then one epoch at 2e-5. When every pair was generated, ``interpolate`` is
    "auto" with the default alphas and no ``domain_dev``, only alphas up to
    :data:`GENERATED_MAX_ALPHA` are tried. Returns the concrete config and the rule applied, in words."""
    from dataclasses import replace

    generated = bool(sources) and all(s not in LABELLED_SOURCES for s in sources)
    rule = "as given"
    if config.epochs is None or config.lr is None:
        recipe = GENERATED_RECIPE if generated else LABELLED_RECIPE
        config = replace(config, epochs=config.epochs if config.epochs is not None else recipe["epochs"],
                         lr=config.lr if config.lr is not None else recipe["lr"])
        rule = "every pair generated" if generated else "labelled pairs"
    if generated and config.interpolate == "auto" and not config.domain_dev and config.alphas == ALPHAS:
        config = replace(config, alphas=tuple(a for a in ALPHAS if a <= GENERATED_MAX_ALPHA))
        rule += f"; alphas <= {GENERATED_MAX_ALPHA:g} without a labelled dev set"
    return config, rule


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
