"""Training pairs from a corpus in the store: generated (then filtered) and mined, as the
``pairs`` commands and the pipeline run them.

>>> result = generate_pairs(registry, "runbooks", GeneratorSpec(per_doc=2), round_trip="minilm@1")  # doctest: +SKIP
>>> mined, report = mine_pairs(registry, result.kept, "minilm@1", "runbooks", MineSettings())      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embedops.app.generators import GeneratorSpec, make_generator
from embedops.app.indexes import open_ready_index
from embedops.corpus import Document
from embedops.errors import UsageError
from embedops.registry import Registry
from embedops.trainer.generate import FilterReport, filter_pairs
from embedops.trainer.margins import TRY_MARGIN
from embedops.trainer.mining import MiningReport, mine_hard_negatives, round_trip_ranker
from embedops.trainer.pairs import TrainingPair

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MineSettings:
    """Positive-aware mining settings (the pipeline's ``[mine]`` keys)."""

    negatives: int = 3  # negatives per pair
    margin: float = 0.95  # drop candidates scoring above margin x the positive's score
    try_margin: float | None = None  # keep candidates up to this looser margin too, for train to try on dev
    # (None: the looser of margin and TRY_MARGIN; equal to margin: keep none)
    range_min: int = 0  # skip the top ranks below this
    range_max: int = 50  # look no deeper than this rank

    def __post_init__(self):
        if not self.margin > 0:
            raise UsageError(f"margin must be above 0, got {self.margin!r}")
        if self.try_margin is not None and not self.try_margin >= self.margin:  # NaN too
            raise UsageError(f"try_margin ({self.try_margin!r}) must be at least margin ({self.margin:g}): it is the "
                             "looser margin train may try; equal to margin keeps no candidates")

    @property
    def looser_margin(self) -> float:
        """The margin candidates are kept up to: ``try_margin``, or the looser of ``margin`` and TRY_MARGIN."""
        return self.try_margin if self.try_margin is not None else max(self.margin, TRY_MARGIN)


@dataclass(frozen=True)
class GeneratedPairs:
    generated: list[TrainingPair]
    kept: list[TrainingPair]
    report: FilterReport


def corpus_documents(registry: Registry, corpus: str, limit: int | None = None) -> list[Document]:
    rows = registry.corpora.documents(corpus).to_pylist()[:limit]
    return [Document(r["id"], r["text"], r["title"]) for r in rows]


def generate_pairs(registry: Registry, corpus: str, spec: GeneratorSpec, *, round_trip: str | None = None,
                   min_words: int = 2, max_words: int = 48, generator=None,
                   on_progress: Progress | None = None) -> GeneratedPairs:
    """Generate queries for ``corpus``'s documents with ``spec`` (or an already built ``generator``),
    then filter them: duplicates, length, and, with ``round_trip`` (a model ref), the round trip:
    the source document must rank in the top ``spec.round_trip_top_k`` under that model."""
    docs = corpus_documents(registry, corpus, spec.limit)
    gen = generator or make_generator(spec, registry.store.root / "cache")
    pairs = gen.generate(docs, on_progress=on_progress) if on_progress and spec.generator == "local" else gen.generate(docs)
    top_k = spec.round_trip_top_k or 10
    rank_of = round_trip_ranker(open_ready_index(registry, round_trip, corpus), top_k) if round_trip else None
    kept, report = filter_pairs(pairs, rank_of=rank_of, top_k=top_k, min_words=min_words, max_words=max_words)
    return GeneratedPairs(pairs, kept, report)


def mine_pairs(registry: Registry, pairs: list[TrainingPair], model_ref: str, corpus: str, settings: MineSettings, *,
               on_progress: Progress | None = None) -> tuple[list[TrainingPair], MiningReport]:
    """Hard negatives for ``pairs`` from ``corpus``'s index under ``model_ref`` (built if missing)."""
    return mine_hard_negatives(pairs, open_ready_index(registry, model_ref, corpus), registry.corpora.table(corpus),
                               num_negatives=settings.negatives, range_min=settings.range_min,
                               range_max=settings.range_max, margin=settings.margin,
                               try_margin=settings.looser_margin, on_progress=on_progress)
