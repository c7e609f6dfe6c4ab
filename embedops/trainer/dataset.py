"""The data step of a training run: held-out split, replay, negatives evened out (pairs short of
mined negatives topped up or left out: the top-up rule), and the table the sentence-transformers
trainer reads.

>>> data = training_data(pairs, config)                 # doctest: +SKIP
>>> data.dataset.column_names                           # doctest: +SKIP
['anchor', 'positive', 'negative_1', 'negative_2', 'negative_3']
>>> top_ups_to_try(config, data, on_dev=True)           # doctest: +SKIP
(('random', 'drop'), '2358 of 2700 pairs short of mined negatives (over 25%): dev chooses')
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from embedops.errors import UsageError
from embedops.trainer.batching import KnownPositives, known_positives
from embedops.trainer.config import TOP_UP_PROBE_SHARE, TOP_UPS, TrainConfig
from embedops.trainer.margins import parse_rule, refilter, rule_label
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.replay import replay_of, with_replay, without_replay


@dataclass
class TrainingData:
    """What the trainer learns from and what scores it: ``train`` (with replay and topped-up
    negatives), ``held_out`` (never trained on), each query's ``known`` positives, the
    ``negatives_per_pair`` columns, how many pairs were ``padded`` with random negatives, and by
    which ``top_up`` rule the ``short`` pairs (domain pairs with fewer mined negatives than the
    best-served pair) were topped up or ``dropped``."""

    train: list[TrainingPair]
    held_out: list[TrainingPair]
    known: KnownPositives
    negatives_per_pair: int
    padded: int
    replayed: int
    dataset: Any  # datasets.Dataset with anchor, positive, negative_1..n
    top_up: str = "random"
    short: int = 0
    dropped: int = 0
    margin: float | None = None  # the margin the train pairs' mined candidates were filtered at (None: as mined)
    replay: float | None = None  # the replay share the rule named (None: the config's fixed share)
    replay_fraction: float = 0.0  # the share of general pairs mixed in

    @property
    def rule(self) -> str:
        """The negatives rule's label (:func:`~embedops.trainer.margins.rule_label`, with ", replay F"
        where the rule names a replay share: :func:`~embedops.trainer.replay.with_replay`)."""
        label = rule_label(self.top_up, self.margin)
        return label if self.replay is None else with_replay(label, self.replay)

    def __len__(self) -> int:
        return len(self.train)


def training_data(pairs: list[TrainingPair], config: TrainConfig,
                  general_pairs: list[TrainingPair] | None = None, top_up: str = "random") -> TrainingData:
    """Split ``pairs`` by query (``config.eval_fraction`` held out), mix in ``general_pairs`` at
    ``config.replay_fraction``, and give every pair the same number of negatives (the loss takes one
    column per negative). ``top_up`` says what happens to a domain pair short of mined negatives:
    "random" tops it up with other pairs' positives (:func:`even_negatives`), "drop" leaves it out
    (its positive stays a known positive of its query). Replay pairs have no mined negatives and are
    always topped up. ``top_up`` may name a margin too ("random, margin 1",
    :func:`~embedops.trainer.margins.rule_label`): the train pairs' mined candidates are filtered again
    at it first (held-out pairs stay as mined, so every rule is scored on the same dev set), and a
    replay share ("random, replay 0.2", :mod:`~embedops.trainer.replay`) that replaces
    ``config.replay_fraction`` ("auto" there means none unless the label names one)."""
    from datasets import Dataset

    if not pairs:
        raise UsageError("no training pairs")
    replay = replay_of(top_up)
    fraction = replay if replay is not None else (
        0.0 if config.replay_fraction == "auto" else float(config.replay_fraction))
    top_up, margin = parse_rule(without_replay(top_up))
    if top_up not in TOP_UPS:
        raise UsageError(f"unknown top-up rule {top_up!r}: use {', '.join(TOP_UPS)}")
    train, held_out = split_by_query(pairs, config.eval_fraction, config.seed)
    if margin is not None:
        train = refilter(train, margin)
    most = max((len(p.negatives) for p in train), default=0)
    short = sum(len(p.negatives) < most for p in train)
    domain = train
    dropped = 0
    if top_up == "drop" and short:
        train = [p for p in train if len(p.negatives) == most]
        dropped = short
    rng = random.Random(config.seed)
    replayed = 0
    if general_pairs and fraction > 0:
        replayed = int(round(fraction / (1 - fraction) * len(train)))
        train = train + [rng.choice(general_pairs) for _ in range(replayed)]
    # never a negative of its own query (a dropped pair's positive included)
    known = known_positives((p.query, p.positive) for p in domain + train[len(train) - replayed:])
    n_neg, train, padded = even_negatives(train, rng, known)
    columns: dict[str, list[str]] = {"anchor": [p.query for p in train], "positive": [p.positive for p in train]}
    for j in range(n_neg):
        columns[f"negative_{j + 1}"] = [p.negatives[j] for p in train]
    return TrainingData(train, held_out, known, n_neg, padded, replayed, Dataset.from_dict(columns),
                        top_up=top_up, short=short, dropped=dropped, margin=margin, replay=replay,
                        replay_fraction=fraction if replayed else 0.0)


def top_ups_to_try(config: TrainConfig, data: TrainingData, *, on_dev: bool) -> tuple[tuple[str, ...], str]:
    """The top-up rules a run tries, the first trained unless dev chooses another, and why in words:
    ``config.top_up`` when given; for "auto", "random" and "drop" both when the recipe is chosen on
    dev and more than :data:`~embedops.trainer.config.TOP_UP_PROBE_SHARE` of the domain pairs are
    short of mined negatives (and "drop" keeps at least two batches), else "random"."""
    domain = len(data.train) - data.replayed + data.dropped
    short = f"{data.short} of {domain} pairs short of mined negatives"
    if config.top_up != "auto":
        return (config.top_up,), f"{short}: {config.top_up}, as given"
    if not data.short:
        return ("random",), "no pair short of mined negatives"
    if not on_dev or data.short <= TOP_UP_PROBE_SHARE * domain:
        why = "no dev score to choose on" if not on_dev else f"at most {TOP_UP_PROBE_SHARE:.0%}"
        return ("random",), f"{short} ({why}): random"
    if domain - data.short < 2 * config.batch_size:
        return ("random",), f"{short}; dropping them would leave under two batches: random"
    return TOP_UPS, f"{short} (over {TOP_UP_PROBE_SHARE:.0%}): dev chooses"


def split_by_query(pairs: list[TrainingPair], fraction: float, seed: int):
    """(train, held out): a ``fraction`` of the queries, drawn with ``seed``, and all their pairs."""
    queries = sorted({p.query for p in pairs})
    random.Random(seed).shuffle(queries)
    # A tenth of 809 queries is 80; a small set still holds out one query (when it has two) so a
    # default run keeps a domain score for choosing its recipe and alpha.
    n_eval = max(1, int(len(queries) * fraction)) if fraction > 0 and len(queries) >= 2 else 0
    held = set(queries[:n_eval])
    return [p for p in pairs if p.query not in held], [p for p in pairs if p.query in held]


def even_negatives(pairs: list[TrainingPair], rng: random.Random,
                   known: KnownPositives | None = None) -> tuple[int, list[TrainingPair], int]:
    """Give every pair as many negatives as the best-served pair has. A pair short of mined negatives
    (the false-negative filter removed its candidates, or a replay pair that never had any) is topped
    up with other pairs' positives drawn at random: easy negatives, never a known positive of the
    pair's query (``known``, see :func:`~embedops.trainer.batching.known_positives`); the mined ones of
    every other pair are kept. Returns (negatives per pair, pairs, how many were topped up)."""
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
