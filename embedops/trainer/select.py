"""Choosing the recipe on the user's own held-out queries: the learning rate from a small grid and
the number of steps by early stopping, under a time budget (:func:`search_recipe`); then the WiSE-FT
weight ``alpha`` (:func:`sweep_alpha`: the best dev score among the alphas that keep the general
rails within bounds).

The search is successive halving with two rungs (Jamieson & Talwalkar, 2016; Li et al., 2018,
"Hyperband"): every learning rate of the grid trains a one-epoch probe, scored on dev twice an epoch
(where many pairs are short of mined negatives, the other top-up rule is probed too, at the best of
those rates: :func:`~embedops.trainer.dataset.top_ups_to_try`; where a looser mining margin changes
many pairs' negatives, that margin too: :func:`~embedops.trainer.margins.margins_to_try`; with general
pairs to replay, the best probe is swept over alpha and, where the general rails hold alpha back, a replay
probe is too, and the higher dev score at the alpha each is allowed wins: :mod:`~embedops.trainer.replay`);
the best probe then goes on from its
checkpoint, with early stopping, up to the epoch limit or the end of the budget. The weights kept are
those of the best dev score seen in any trial. Each probe gets an equal share of what is left of the
budget with one share kept for going on.

>>> search = search_recipe(trainer_for, lrs=(2e-5, 5e-5, 1e-4), epochs=3, budget_s=1500, clock=time.monotonic)  # doctest: +SKIP
>>> search.lr, search.best["step"], search.reason                                                            # doctest: +SKIP
(5e-05, 52, 'best held-out nDCG@10 of 3 learning rates; early stopping: ...')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from embedops.trainer.config import TrainConfig
from embedops.trainer.evaluators import per_query_scores, score
from embedops.trainer.replay import with_replay, without_replay
from embedops.trainer.trial import Trial


@dataclass(frozen=True)
class Judged:
    """A probe's weights judged as the registered model will be: the best dev score among the alphas
    the general rails allow (``score``; -inf where none is allowed), that ``alpha``, and whether the
    rails ``held_back`` a higher-scoring alpha (or allowed none)."""

    score: float
    alpha: float
    held_back: bool

    def to_dict(self) -> dict:
        return {"dev_ndcg@10": self.score if math.isfinite(self.score) else None, "alpha": self.alpha,
                "held_back": self.held_back}

    def __str__(self) -> str:
        if not math.isfinite(self.score):
            return f"no alpha allowed (took {self.alpha:g})"
        return f"{self.score:.2f} at alpha {self.alpha:g}"


# judge(model) -> Judged: the alpha sweep of the weights the model holds (it must leave them in place).
Judge = Callable[[object], Judged]

# run(lr, epochs, deadline, pause_after_epochs, top_up) -> Trial: one trial from the base weights, or
# going on from that (learning rate, top-up rule)'s checkpoint; it leaves the model holding the trial's
# best dev weights.
RunTrial = Callable[[float, int, float, "int | None", str], Trial]


@dataclass
class RecipeSearch:
    """The trials run, the chosen learning rate and top-up rule, the best dev point and the weights
    that scored it."""

    trials: list[Trial] = field(default_factory=list)
    lr: float | None = None
    top_up: str | None = None
    best: dict | None = None
    weights: dict | None = None
    reason: str = ""
    replay_reason: str | None = None  # why replay was kept, left out or not probed (None: not in question)
    judged: dict[str, dict] = field(default_factory=dict)  # rule label -> its Judged point (replay probes)

    def to_dict(self) -> dict:
        return {"lr": self.lr, "top_up": self.top_up, "best": self.best, "reason": self.reason,
                "replay_reason": self.replay_reason, "judged": self.judged,
                "trials": [t.to_dict() for t in self.trials]}

    def kept(self) -> Trial | None:
        """The trial of the chosen learning rate and top-up rule."""
        return next((t for t in self.trials if (t.lr, t.top_up) == (self.lr, self.top_up)), None)


def _snapshot(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _keep_if_best(search: RecipeSearch, trial: Trial, model) -> None:
    if trial.best is not None and (search.best is None or trial.best["domain_ndcg@10"] > search.best["domain_ndcg@10"]):
        search.best, search.weights = trial.best | {"lr": trial.lr, "top_up": trial.top_up}, _snapshot(model)
        search.lr, search.top_up = trial.lr, trial.top_up


def search_recipe(model, run: RunTrial, *, lrs: tuple[float, ...], epochs: int, budget_s: float,
                  clock: Callable[[], float], top_ups: tuple[str, ...] = ("random",),
                  replays: tuple[float, ...] = (), judge: Judge | None = None) -> RecipeSearch:
    """Probe each of ``lrs`` for one epoch with the first of ``top_ups``, then each other top-up rule
    at the best rate so far, then (with ``judge``) each replay share of ``replays`` where the general
    rails held alpha back (:func:`_replay_probe`), go on with the best, keep the best dev weights (see
    the module's docstring). ``model`` ends holding them. With one probe to run there is none; with
    one epoch the probes are the whole trials."""
    search = RecipeSearch()
    end = clock() + budget_s
    goes_on = epochs > 1
    replays = replays if judge is not None else ()
    # a replay probe runs only where the rails hold alpha back: no share is kept for it beforehand (kept,
    # it cut SciFact's rate probes short of their epoch, and there the rails never held a probe back)
    shared = len(lrs) + len(top_ups) - 1  # the probes that share the budget before going on
    probes = shared + bool(replays)

    def probe(lr: float, top_up: str, left_after: int, keep: bool = True) -> Trial | None:
        left = end - clock()
        if left <= 0:
            return None
        share = left / (left_after + 1 + goes_on)  # the probes left, and one share for going on
        trial = run(lr, epochs, clock() + share, 1 if goes_on else None, top_up)
        search.trials.append(trial)
        if keep:
            _keep_if_best(search, trial, model)
        return trial

    if probes > 1:
        done = 0
        for lr in lrs:
            done += 1
            if not probe(lr, top_ups[0], shared - done):
                break
        best_lr = search.lr
        for top_up in top_ups[1:] if best_lr is not None else ():
            done += 1
            if not probe(best_lr, top_up, shared - done):
                break
        for i, fraction in enumerate(replays if search.lr is not None else ()):
            left_after = len(replays) - i - 1
            if not _replay_probe(search, model, lambda label: probe(search.lr, label, left_after, keep=False),
                                 fraction, judge):
                break
    else:
        search.trials.append(run(lrs[0], epochs, end, None, top_ups[0]))
        _keep_if_best(search, search.trials[-1], model)
        goes_on = False
    chosen = search.kept()
    if goes_on and chosen is not None and chosen.stopped in ("probe", "time budget") and clock() < end:
        trial = run(chosen.lr, epochs, end, None, chosen.top_up)  # from the probe's checkpoint, its dev points kept
        trial.seconds += chosen.seconds
        search.trials[search.trials.index(chosen)] = trial
        _keep_if_best(search, trial, model)
    if search.weights is not None:
        model.load_state_dict(search.weights)
    last = search.kept()
    tried = ", ".join(sorted({f"{t.lr:g}" for t in search.trials}, key=float))
    rules = list(dict.fromkeys(t.top_up for t in search.trials))
    over = f" and negatives rules {' / '.join(rules)}" if len(rules) > 1 else ""
    search.reason = (f"best dev nDCG@10 over learning rates {tried}{over}; lr {search.lr:g}"
                     f"{f' with {search.top_up}' if over else ''} stopped by {last.stopped}"
                     if last else "the time budget ran out before any trial was scored")
    return search


def _replay_probe(search: RecipeSearch, model, probe: Callable[[str], Trial | None], fraction: float,
                  judge: Judge) -> bool:
    """Where the general rails hold alpha back at the best probe so far (``judge`` sweeps it), probe
    replay share ``fraction`` at its learning rate and negatives rule, and keep whichever scores higher
    on dev at the alpha its rails allow (:mod:`~embedops.trainer.replay`). False when the budget ran out."""
    model.load_state_dict(search.weights)
    without = judge(model)
    label = with_replay(without_replay(search.top_up), fraction)
    search.judged[search.top_up] = without.to_dict()
    if not without.held_back:
        search.replay_reason = (f"no replay: the general rails allowed alpha {without.alpha:g}, the best dev "
                                f"score, at lr {search.lr:g}; replay {fraction:g} not probed")
        return True
    trial = probe(label)
    if trial is None:
        search.replay_reason = "no replay: the budget ran out before the replay probe"
        return False
    judged = judge(model)  # the model holds the probe's best dev weights
    search.judged[label] = judged.to_dict()
    won = judged.score > without.score
    if won and trial.best is not None:
        search.best, search.weights = trial.best | {"lr": trial.lr, "top_up": trial.top_up}, _snapshot(model)
        search.top_up = trial.top_up
    kept, other = (judged, without) if won else (without, judged)
    search.replay_reason = (f"{f'replay {fraction:g}' if won else 'no replay'}: dev nDCG@10 {kept} against "
                            f"{other} {'without' if won else f'with replay {fraction:g}'} (at the alphas the "
                            "general rails allow, one-epoch probes)")
    return True


def interpolate(model, base_state: dict, tuned_state: dict, alpha: float) -> None:
    """WiSE-FT: ``theta = alpha * tuned + (1 - alpha) * base`` (Wortsman et al., 2022)."""
    import torch

    with torch.no_grad():
        mixed = {k: (alpha * v + (1 - alpha) * base_state[k].to(v.device)) if v.is_floating_point() else v
                 for k, v in tuned_state.items()}
        model.load_state_dict(mixed)


def _standard_error(deltas: np.ndarray) -> float:
    """The standard error of the mean of per-query differences (0 with fewer than two queries)."""
    return float(deltas.std(ddof=1) / math.sqrt(len(deltas))) if len(deltas) > 1 else 0.0


def _within_noise(best: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``other``'s mean dev score is within one standard error of the paired per-query
    difference below ``best``'s: the dev queries cannot tell the two apart."""
    deltas = best - other
    return float(deltas.mean()) <= _standard_error(deltas)


# One-sided 95% normal quantile: a retrieval rail's drop must stay within max_general_drop at the upper
# end of its one-sided 95% interval (a non-inferiority test), not only on this sample's mean.
NON_INFERIORITY_Z = 1.645


def _general_point(model, general: dict[str, object], before: dict, base_per_query: dict[str, np.ndarray],
                   limit: float) -> tuple[dict, bool]:
    """Each general score under ``model``, and whether all stay within ``limit`` points of the base's:
    a set with per-query scores in ``base_per_query`` (a retrieval rail) by the upper bound of the
    one-sided 95% interval of its paired per-query drop, the rest (STS) by their drop."""
    point, allowed = {}, True
    for key, evaluator in general.items():
        if key in base_per_query:
            scores = per_query_scores(evaluator, model)
            drops = base_per_query[key] - scores
            point[key] = float(scores.mean())
            bound = float(drops.mean()) + NON_INFERIORITY_Z * _standard_error(drops)
            point[f"{key}_drop_upper95"] = bound
        else:
            point[key] = score(evaluator, model)
            bound = before[key] - point[key]
        allowed = allowed and (math.isnan(bound) or bound <= limit)
    return point, allowed


def _rails_could_matter(rule: str, best: dict | None, dev_mean: float) -> bool:
    """Whether an alpha's general rails must be scored: always under the one-standard-error rule (an
    alpha below the best may be chosen), under "best" only while no allowed alpha scores as high on dev
    (one that cannot beat the best allowed dev score cannot be chosen, whatever its rails say)."""
    return rule != "best" or best is None or dev_mean > best["domain_ndcg@10"]


def judge_by_sweep(model, base_state: dict, config: TrainConfig, before: dict, dom_eval, general: dict[str, object],
                   base_per_query: dict[str, np.ndarray]) -> Judged:
    """The weights ``model`` holds, judged by :func:`sweep_alpha` (they are put back after)."""
    tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        sweep, alpha, _ = sweep_alpha(model, base_state, tuned, config, before, dom_eval, general, base_per_query)
    finally:
        model.load_state_dict(tuned)
    chosen = next(p for p in sweep if p["alpha"] == alpha)
    held_back = not chosen["allowed"] or any(
        p["allowed"] is False and p["domain_ndcg@10"] > chosen["domain_ndcg@10"] for p in sweep)
    return Judged(chosen["domain_ndcg@10"] if chosen["allowed"] else -math.inf, alpha, held_back)


def sweep_alpha(model, base_state: dict, tuned_state: dict, config: TrainConfig, before: dict, dom_eval,
                general: dict[str, object], base_per_query: dict[str, np.ndarray] | None = None):
    """WiSE-FT's alpha for ``interpolate="auto"`` (Wortsman et al., 2022): among the alphas whose
    every general score (``general``: metric name -> evaluator, e.g. STS Spearman and general
    retrieval nDCG@10) stays within ``max_general_drop`` points of the base model's (``before``),
    ``config.alpha_rule`` "best" takes the best dev score; "one-se" takes the alpha nearest the base
    whose dev score is within one standard error of the paired per-query difference from that best
    (the one-standard-error rule, Hastie, Tibshirani & Friedman, "The Elements of Statistical
    Learning", 2009, 7.10). "best" is the default: cross-fitted on halves of the trainer's own dev
    queries (three seeds' SciFact models, docs/BENCHMARKS.md), its choices scored 0.37 to 0.98 points
    higher on the half they were not chosen on; with a retrieval rail that sees forgetting, the
    one-standard-error rule only gives up lift.

    A general set whose base per-query scores are in ``base_per_query`` (a retrieval rail) must keep
    its drop within the limit at the upper end of the one-sided 95% interval of the paired per-query
    differences (a non-inferiority test): a rail is a sample of general queries, and a mean drop of
    0.95 on one is not evidence that general retrieval lost less than a point (docs/BENCHMARKS.md).

    Alphas are tried in the given order (1.0 down); the sweep stops once two in a row fall outside
    one standard error of the best (or the general limit). Each alpha costs one domain evaluation and,
    where its rails could change the choice, one per general set (under "best" an alpha that cannot
    beat the best allowed dev score is not scored on them: its point's general scores are None and
    ``allowed`` is None). Returns (sweep, alpha, reason in words)."""
    sweep: list[dict] = []
    dev: dict[float, np.ndarray] = {}
    best = None
    outside = 0
    for alpha in config.alphas:
        interpolate(model, base_state, tuned_state, alpha)
        dev[alpha] = per_query_scores(dom_eval, model)
        point = {"alpha": alpha, "domain_ndcg@10": float(dev[alpha].mean())}
        if _rails_could_matter(config.alpha_rule, best, point["domain_ndcg@10"]):
            general_point, allowed = _general_point(model, general, before, base_per_query or {},
                                                    config.max_general_drop)
        else:
            general_point, allowed = dict.fromkeys(general), None
        point |= general_point | {"allowed": allowed}
        sweep.append(point)
        if allowed and (best is None or point["domain_ndcg@10"] > best["domain_ndcg@10"]):
            best, outside = point, 0
        elif best is not None:
            outside = 0 if allowed is not False and _within_noise(dev[best["alpha"]], dev[alpha]) else outside + 1
            if outside == 2:
                break
    return _choose(sweep, dev, best, config, held=bool(base_per_query), n_general=len(general))


def _choose(sweep: list[dict], dev: dict[float, np.ndarray], best: dict | None, config: TrainConfig, *,
            held: bool, n_general: int):
    """The sweep's choice by ``config.alpha_rule`` and the reason in words (see :func:`sweep_alpha`)."""
    tried = ", ".join(f"{s['alpha']:g}" for s in sweep)
    scores = "general score" if n_general < 2 else f"{n_general} general scores"
    if best is None:  # every alpha tried loses too much general ability: the one nearest the base
        return sweep, sweep[-1]["alpha"], (f"no alpha tried ({tried}) kept the {scores} within "
                                           f"{config.max_general_drop:g} point(s) of the base; took the lowest")
    top = dev[best["alpha"]]
    for point in sweep:
        within = _within_noise(top, dev[point["alpha"]])
        point["within_noise_of_best"] = None if point["allowed"] is None else bool(point["allowed"] and within)
    where = "held-out" if not config.domain_dev else "dev"
    chosen = best
    if config.alpha_rule == "one-se":
        chosen = min((p for p in sweep if p["within_noise_of_best"]), key=lambda p: p["alpha"])
    if chosen is best:
        why = f"best {where} nDCG@10"
    else:
        se = _standard_error(top - dev[chosen["alpha"]])
        why = (f"nearest the base within one standard error ({se:.2f}) of the best {where} nDCG@10 "
               f"({best['domain_ndcg@10']:.2f} at alpha {best['alpha']:g})")
    rails = " (retrieval rails: 95% upper bound of the drop)" if held else ""
    return sweep, chosen["alpha"], (f"{why} among alphas {tried} whose {scores} stay within "
                                    f"{config.max_general_drop:g} point(s) of the base{rails}")
