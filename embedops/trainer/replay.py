"""Replay of general pairs as a recipe choice made on the user's held-out queries.

Mixing general (query, document) pairs into each batch ("replay", Rolnick et al., 2019, "Experience
Replay for Continual Learning") keeps some of what a domain fine-tune wears away, and takes batch
places from the domain pairs. Its worth is measured where forgetting costs something: where the
general rails hold WiSE-FT's alpha below the best dev score (:func:`~embedops.trainer.select.sweep_alpha`),
a model that forgets less may keep a higher alpha and score higher on dev at the alpha it is allowed.
So with ``replay_fraction="auto"`` and general pairs given (``--general``), the recipe search
(:func:`~embedops.trainer.select.search_recipe`) sweeps alpha on its best probe; where the rails held
it back, it probes :data:`REPLAY_FRACTION` at the same learning rate and negatives rule, sweeps that
probe too, and keeps whichever scores higher on dev at its allowed alpha. Where the rails allowed the
best alpha, replay cannot raise that score and is not probed (its probe's time goes to the best rate).

A run's negatives rule label (:func:`~embedops.trainer.margins.rule_label`) names the replay share
with ", replay F" (:func:`with_replay`, :func:`replay_of`).

>>> replays_to_try("auto", general_pairs, on_dev=True, sweeps=True)     # doctest: +SKIP
((0.0, 0.2), '1,405 general pairs: dev chooses between no replay and 0.2 where the general rails hold alpha back')
>>> with_replay("random, margin 1", 0.2), replay_of("random, replay 0.2")  # doctest: +SKIP
('random, margin 1, replay 0.2', 0.2)
"""

from __future__ import annotations

from embedops.errors import UsageError

# The share of the training pairs the replay probe gives to general pairs: the `train --replay` default
# before replay was chosen on dev. A fixed setting, never tuned on a score; `--replay F` sets another.
REPLAY_FRACTION = 0.2
_TAG = ", replay "
NO_GENERAL_PAIRS = "no general pairs (--general)"  # how the reason starts when there is nothing to replay


def with_replay(label: str, fraction: float) -> str:
    """``label`` with the replay share named: 'random, replay 0.2'."""
    return f"{label}{_TAG}{fraction:g}"


def replay_of(label: str) -> float | None:
    """The replay share a rule label names (None: the run's fixed share)."""
    _, sep, fraction = label.partition(_TAG)
    return float(fraction) if sep else None


def without_replay(label: str) -> str:
    """``label`` less its replay part (the top-up rule and margin only)."""
    return label.partition(_TAG)[0]


def replays_to_try(replay_fraction: str | float, general_pairs: list | None, *, on_dev: bool,
                   sweeps: bool) -> tuple[tuple[float, ...], str]:
    """The replay shares a run trains at, the first unless dev chooses another, and why in words:
    ``replay_fraction`` when given (a share above 0 without general pairs is a UsageError); for "auto", none without general pairs,
    and :data:`REPLAY_FRACTION` as a probe when the recipe is chosen on dev and alpha is swept
    (``sweeps``: the choice is made at the alpha the rails allow), else :data:`REPLAY_FRACTION` as it
    stands (the `--replay` default before it was chosen on dev)."""
    n = f"{len(general_pairs):,} general pairs" if general_pairs else NO_GENERAL_PAIRS
    if not general_pairs:
        if replay_fraction != "auto" and float(replay_fraction) > 0:
            raise UsageError(f"--replay {float(replay_fraction):g} mixes general pairs into training and none were "
                             "given: name them with --general FILE ([train] general_pairs in a pipeline)")
        return (0.0,), f"{n}: no replay"
    if replay_fraction != "auto":
        return (float(replay_fraction),), f"{n}: {float(replay_fraction):g}, as given"
    if not (on_dev and sweeps):
        why = "no dev score to choose on" if not on_dev else "alpha is not swept"
        return (REPLAY_FRACTION,), f"{n} ({why}): {REPLAY_FRACTION:g}"
    return (0.0, REPLAY_FRACTION), (f"{n}: dev chooses between no replay and {REPLAY_FRACTION:g} where the "
                                    "general rails hold alpha back")
