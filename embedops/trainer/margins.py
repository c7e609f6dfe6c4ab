"""The mining margin as a recipe choice made on the user's held-out queries.

Positive-aware mining (:mod:`embedops.trainer.mining`) drops a candidate scoring above ``margin`` x
its pair's positive as a probable false negative. Where each query has many relevant documents, or
the positives score low, the default 95% drops most candidates and leaves most pairs short of
negatives (issue #32's domain: 125,595 of ~150,000 candidates dropped, 2,358 of 3,000 pairs short);
where labels are sparse, the same filter keeps useful hard negatives out. Which is right is a fact
about the user's data, so ``pairs mine`` keeps the candidates up to a looser ``try_margin`` (default
:data:`TRY_MARGIN`) with their scores, and ``embedops train`` with ``margin="auto"`` probes that margin
at the best learning rate where it gives more than :data:`MARGIN_PROBE_SHARE` of the pairs, short of
negatives at the mined margin, more of them: a third remedy for short pairs beside topping up and
dropping, where the margin is what left them short. Dev keeps whichever scores better.

A run's negatives rule is named by a label: the top-up rule ("random" or "drop"), and
", margin M" when the mined pairs are filtered again at M (:func:`rule_label`, :func:`parse_rule`).

>>> margins_to_try("auto", pairs, on_dev=True)                                              # doctest: +SKIP
((None, 1.0), '6 of 20 pairs short of negatives at margin 0.95, 6 of them get more at 1 (over 25% of the pairs): dev chooses between 0.95 and 1')
>>> refilter(pairs, 1.0)[0].negatives == pairs[0].mined.negatives_at(1.0)                  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import replace

from embedops.errors import UsageError
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.replay import without_replay

# A negative must still score below its own positive: the loosest margin that keeps the positive-aware
# idea (NV-Retriever's TopK-PercPos at 100%; Moreira et al., 2024). `pairs mine` keeps candidates up to it.
TRY_MARGIN = 1.0
# Probe the looser margin only where it fills more than this share of the pairs (short of negatives at
# the mined margin, fuller at the looser one; the top-up probe's share, TOP_UP_PROBE_SHARE). Pairs short
# for another reason are not its business: TREC DL 2019's pairs are 3,593 of 4,102 short because known
# positives fill the mining window, and 1.0 fills 33 of them. A first rule probed wherever the looser
# margin changed the negatives of over a quarter of the pairs: on SciFact's labelled pairs (364 of 919
# changed, 13% short) the probe's share of the 25-minute budget was taken from the best rate's going on,
# and the kept model scored lower on dev in seeds 0 and 1 (docs/BENCHMARKS.md, "The mining margin on dev").
# Where most pairs keep their negatives, a looser margin only swaps one hard negative for another.
MARGIN_PROBE_SHARE = 0.25


def rule_label(top_up: str, margin: float | None) -> str:
    """'random', 'drop', or 'random, margin 1': a negatives rule as trials and reports name it."""
    return top_up if margin is None else f"{top_up}, margin {margin:g}"


def parse_rule(label: str) -> tuple[str, float | None]:
    """(top-up rule, margin or None for "as mined") from :func:`rule_label`'s label (a replay part,
    :func:`~embedops.trainer.replay.with_replay`, is not theirs and is left out)."""
    top_up, sep, margin = without_replay(label).partition(", margin ")
    return top_up, float(margin) if sep else None


def mined_range(pairs: list[TrainingPair]) -> tuple[float, float] | None:
    """The margins every mined record among ``pairs`` can be filtered at (None when none has one)."""
    ranges = [p.mined.margins for p in pairs if p.mined is not None]
    if not ranges:
        return None
    return max(r[0] for r in ranges), min(r[1] for r in ranges)


def refilter(pairs: list[TrainingPair], margin: float) -> list[TrainingPair]:
    """``pairs`` with the negatives mining at ``margin`` would have kept (pairs without a mined record
    are kept as they are)."""
    return [replace(p, negatives=p.mined.negatives_at(margin)) if p.mined is not None else p for p in pairs]


def short_and_filled(pairs: list[TrainingPair], looser: float) -> tuple[int, int]:
    """How many mined pairs are short of negatives at their mined margin, and how many of those get
    more at ``looser``."""
    short = filled = 0
    for p in pairs:
        if p.mined is None or len(p.negatives) >= p.mined.negatives:
            continue
        short += 1
        filled += len(p.mined.negatives_at(looser)) > len(p.negatives)
    return short, filled


def margins_to_try(margin: str | float, pairs: list[TrainingPair], *, on_dev: bool) -> tuple[tuple[float | None, ...], str]:
    """The margins a run trains at (None: as mined), the first unless dev chooses another, and why in
    words: ``margin`` when given (it must lie in every mined record's range); for "auto", the mined
    margin, and the looser end of the mined range too when the recipe is chosen on dev and that margin
    gives more than :data:`MARGIN_PROBE_SHARE` of the pairs, short at the mined margin, more negatives."""
    span = mined_range(pairs)
    if margin != "auto":
        m = float(margin)
        if span is None:
            raise UsageError(f"--margin {m:g} filters mined candidates again, and no pair carries them: mine the "
                             "pairs with `embedops pairs mine` (it keeps candidates up to --try-margin)")
        if not span[0] <= m <= span[1]:
            raise UsageError(f"--margin {m:g} is outside the margins the pairs were mined for "
                             f"({span[0]:g} to {span[1]:g}): mine again with --margin/--try-margin around it")
        return (m,), f"margin {m:g}, as given"
    if span is None or span[1] <= span[0]:
        return (None,), "as mined (the pairs carry no candidates for another margin)"
    looser = span[1]
    short, filled = short_and_filled(pairs, looser)
    seen = (f"{short} of {len(pairs)} pairs short of negatives at margin {span[0]:g}, {filled} of them get "
            f"more at {looser:g}")
    if not on_dev:
        return (None,), f"{seen} (no dev score to choose on): as mined"
    if filled <= MARGIN_PROBE_SHARE * len(pairs):
        return (None,), f"{seen} (at most {MARGIN_PROBE_SHARE:.0%} of the pairs): as mined"
    return (None, looser), (f"{seen} (over {MARGIN_PROBE_SHARE:.0%} of the pairs): dev chooses between "
                            f"{span[0]:g} and {looser:g}")
