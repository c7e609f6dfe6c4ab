"""Batches in which no query meets one of its own known positives as a negative.

A contrastive loss with in-batch negatives (MultipleNegativesRankingLoss and its GradCache form)
scores each anchor against every positive and negative text of its batch, and treats all but its own
positive as negatives. Where documents are relevant to several queries (multi-positive data), another
row's positive is often a known positive of the anchor: trained as a negative, it pushes the model
away from a right answer. sentence-transformers' ``NO_DUPLICATES`` sampler keeps repeated texts
apart; :class:`KnownPositiveBatchSampler` also keeps apart two rows when a text of one is a known
positive of the other's query, so the loss (either form) never sees a known positive as a negative.

>>> known = known_positives([("q1", "A"), ("q1", "B"), ("q2", "B"), ("q3", "C")])
>>> sorted(known["q1"])
['A', 'B']
>>> conflict(("q1", ["A"]), ("q2", ["B"]), known)   # B is a known positive of q1
True
>>> conflict(("q1", ["A"]), ("q3", ["C"]), known)
False
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Iterator

try:  # sentence-transformers 6
    from sentence_transformers.base.sampler import DefaultBatchSampler
except ImportError:  # sentence-transformers 5.x
    from sentence_transformers.sampler import DefaultBatchSampler

KnownPositives = dict[str, frozenset[str]]


def known_positives(pairs: Iterable[tuple[str, str]]) -> KnownPositives:
    """``{query text: every positive text given for it}`` from ``(query, positive)`` pairs."""
    out: dict[str, set[str]] = defaultdict(set)
    for query, positive in pairs:
        out[query].add(positive)
    return {q: frozenset(p) for q, p in out.items()}


def conflict(a: tuple[str, list[str]], b: tuple[str, list[str]], known: KnownPositives) -> bool:
    """Whether rows ``a`` and ``b`` (``(anchor, [positive, negatives...])``) must not share a batch:
    a text repeats across them, or a text of one is a known positive of the other's anchor."""
    texts_a, texts_b = {a[0], *a[1]}, {b[0], *b[1]}
    return bool(texts_a & texts_b or known.get(a[0], frozenset()) & texts_b
                or known.get(b[0], frozenset()) & texts_a)


class KnownPositiveBatchSampler(DefaultBatchSampler):
    """Shuffled batches (a new order each epoch, from ``seed``) filled first-fit: each row joins the
    first open batch it does not :func:`conflict` with, or opens a new one. Full batches come in the
    order they filled and the few short ones last (dropped with ``drop_last``); every row is in one
    batch an epoch, and ``__len__`` counts exactly the batches made. ``known`` comes from
    :func:`known_positives` over every pair of the training set."""

    def __init__(self, dataset, batch_size: int, drop_last: bool, known: KnownPositives,
                 valid_label_columns=None, generator=None, seed: int = 0):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        columns = [c for c in dataset.column_names if c not in set(valid_label_columns or [])]
        anchor, others = dataset[columns[0]], [dataset[c] for c in columns[1:]]  # column reads, not row by row
        self.rows = [(a, list(rest)) for a, *rest in zip(anchor, *others)]
        self.known, self.batch_size, self.drop_last, self.seed = known, batch_size, drop_last, seed
        self.epoch = 0
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        """This epoch's batches, made once: ``__len__`` must count exactly what ``__iter__`` yields
        (the trainer stops an epoch after ``len`` steps), and conflicts can leave batches short."""
        if self._cached is not None and self._cached[0] == self.epoch:
            return self._cached[1]
        order = self._order(random.Random(self.seed + self.epoch))
        full: list[list[int]] = []
        open_: list[tuple[list[int], set[str], set[str]]] = []  # (rows, their texts, their queries' positives)
        for i in order:  # first fit: the first open batch the row does not conflict with, else a new one
            anchor, rest = self.rows[i]
            mine, positives = {anchor, *rest}, self.known.get(anchor, frozenset())
            for k, (rows, texts, banned) in enumerate(open_):
                if not (mine & texts or mine & banned or positives & texts):
                    rows.append(i)
                    texts |= mine
                    banned |= positives
                    if len(rows) == self.batch_size:
                        full.append(open_.pop(k)[0])
                    break
            else:
                open_.append(([i], set(mine), set(positives)))
                if self.batch_size == 1:
                    full.append(open_.pop()[0])
        # full batches in the order they filled, short ones last (kept unless drop_last): a sharded
        # sampler (accelerate, several processes) stops at the first short batch
        batches = full + ([] if self.drop_last else [rows for rows, _, _ in open_])
        self._cached = (self.epoch, batches)
        return batches

    def _order(self, rng: random.Random) -> list[int]:
        """The rows shuffled, then dealt round-robin by anchor (each query's first row, then each
        one's second, ...): rows of one query can never share a batch, and spread out they do not
        pile up at the end as short batches."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (anchor, _) in enumerate(self.rows):
            groups[anchor].append(i)
        anchors = list(groups)
        rng.shuffle(anchors)
        for anchor in anchors:
            rng.shuffle(groups[anchor])
        depth = max((len(g) for g in groups.values()), default=0)
        return [groups[a][r] for r in range(depth) for a in anchors if r < len(groups[a])]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


class KnownPositiveBatches:
    """What ``SentenceTransformerTrainingArguments(batch_sampler=...)`` takes: a factory of
    :class:`KnownPositiveBatchSampler` over ``known`` (a class, so the training arguments can be
    pickled into checkpoints)."""

    def __init__(self, known: KnownPositives):
        self.known = known

    def __call__(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        return KnownPositiveBatchSampler(dataset, batch_size, drop_last, self.known, valid_label_columns, generator,
                                         seed)

    def __repr__(self) -> str:  # what the trainer's logged arguments show
        return f"KnownPositiveBatches({len(self.known)} queries)"


def batch_sampler_for(known: KnownPositives) -> KnownPositiveBatches:
    """The batch sampler factory for a training set's known positives."""
    return KnownPositiveBatches(known)
