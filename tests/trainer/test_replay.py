"""Replay of general pairs as a recipe choice: where the general rails hold alpha back at the best
probe, the search probes a replay share and keeps whichever scores higher on dev at the alpha its
rails allow; where they do not, replay is not probed."""

import math

import pytest
import torch

from embedops.errors import UsageError
from embedops.trainer.config import TrainConfig
from embedops.trainer.dataset import training_data
from embedops.trainer.margins import parse_rule
from embedops.trainer.replay import REPLAY_FRACTION, replay_of, replays_to_try, with_replay, without_replay
from embedops.trainer.select import Judged, search_recipe
from embedops.trainer.trial import Trial
from embedops.trainer.pairs import TrainingPair

from test_mining_and_training import reg  # noqa: F401  (the fixture)
from test_recipe_search import Clock

GENERAL = [TrainingPair(f"what is thing {i}", f"thing {i} is an everyday object number {i}") for i in range(30)]
DOMAIN = [TrainingPair(f"query {i}", f"runbook {i}: restart service {i}", negatives=[f"runbook {i + 1}"])
          for i in range(40)]


def test_labels_name_the_replay_share_and_the_other_parts_read_as_before():
    label = with_replay("random, margin 1", 0.2)
    assert label == "random, margin 1, replay 0.2" and replay_of(label) == 0.2
    assert without_replay(label) == "random, margin 1" and parse_rule(label) == ("random", 1.0)
    assert replay_of("drop") is None and parse_rule(with_replay("drop", 0.1)) == ("drop", None)


def test_dev_chooses_replay_only_with_general_pairs_a_dev_score_and_an_alpha_sweep():
    assert replays_to_try("auto", None, on_dev=True, sweeps=True) == ((0.0,), "no general pairs (--general): no replay")
    with pytest.raises(UsageError, match="--replay 0.3 mixes general pairs into training and none were given"):
        replays_to_try(0.3, None, on_dev=True, sweeps=True)
    assert replays_to_try(0.0, None, on_dev=True, sweeps=True)[0] == (0.0,)
    assert replays_to_try("auto", GENERAL, on_dev=True, sweeps=True) == (
        (0.0, REPLAY_FRACTION), "30 general pairs: dev chooses between no replay and 0.2 where the general rails "
                                "hold alpha back")
    assert replays_to_try("auto", GENERAL, on_dev=False, sweeps=True) == (
        (REPLAY_FRACTION,), "30 general pairs (no dev score to choose on): 0.2")
    assert replays_to_try("auto", GENERAL, on_dev=True, sweeps=False)[0] == (REPLAY_FRACTION,)
    assert replays_to_try(0.1, GENERAL, on_dev=True, sweeps=True) == ((0.1,), "30 general pairs: 0.1, as given")


@pytest.mark.parametrize("bad", [1.0, -0.1, math.nan, "half", True])
def test_a_replay_share_outside_0_to_1_is_refused_with_the_option_named(bad):
    with pytest.raises(UsageError, match=r"--replay takes 'auto' or a share in \[0, 1\)"):
        TrainConfig(replay_fraction=bad)
    assert TrainConfig(replay_fraction="0.25").replay_fraction == 0.25


def test_a_replay_label_mixes_general_pairs_into_training_only():
    config = TrainConfig(eval_fraction=0.2, interpolate=None)
    plain = training_data(DOMAIN, config, GENERAL, top_up="random")
    mixed = training_data(DOMAIN, config, GENERAL, top_up="random, replay 0.2")
    assert (plain.replayed, plain.replay_fraction, plain.rule) == (0, 0.0, "random")  # auto: none unless named
    assert mixed.replayed == 8 and mixed.replay_fraction == 0.2 and mixed.rule == "random, replay 0.2"  # 8 of 40
    assert len(mixed.train) == 40 and mixed.held_out == plain.held_out  # dev is the same for both
    general = {p.query for p in GENERAL}
    assert sum(q in general for q in mixed.dataset["anchor"]) == 8
    fixed = training_data(DOMAIN, TrainConfig(eval_fraction=0.2, interpolate=None, replay_fraction=0.5), GENERAL)
    assert fixed.replayed == 32 and fixed.replay is None and fixed.rule == "random"


def _fake(clock: Clock, raw: dict[str, float], judged: dict[float, Judged]):
    """One trainer run per call (10 s on the clock) whose model weight is its raw dev score, and a
    judge that reads the weight: what the alpha sweep of those weights would give."""
    model = torch.nn.Linear(1, 1, bias=False)
    calls, judged_weights = [], []

    def run(lr, epochs, deadline, pause, top_up="random"):
        calls.append((lr, top_up, pause))
        clock.now += 10
        score = raw[top_up] + (pause is None)  # going on improves by one point
        with torch.no_grad():
            model.weight.fill_(score)
        return Trial(lr=lr, epochs=epochs, steps=5, dev=[{"step": 5, "domain_ndcg@10": score}],
                     best={"step": 5, "epoch": 1.0, "domain_ndcg@10": score}, top_up=top_up,
                     stopped="probe" if pause else "max epochs", seconds=10)

    def judge(m):
        judged_weights.append(m.weight.item())
        clock.now += 1
        return judged[m.weight.item()]

    return model, run, judge, calls, judged_weights


def test_where_the_rails_hold_alpha_back_the_replay_probe_is_kept_by_its_score_at_its_alpha():
    clock = Clock()
    # replay's raw dev score is lower (its batches hold fewer domain pairs), and its rails allow alpha 1
    model, run, judge, calls, seen = _fake(clock, {"random": 85.0, "random, replay 0.2": 83.0},
                                           {85.0: Judged(80.0, 0.5, True), 83.0: Judged(83.0, 1.0, False)})
    search = search_recipe(model, run, lrs=(5e-5,), epochs=2, budget_s=400, clock=clock, replays=(0.2,), judge=judge)
    assert [(c[1], c[2]) for c in calls] == [("random", 1), ("random, replay 0.2", 1), ("random, replay 0.2", None)]
    assert seen == [85.0, 83.0]  # each probe's best weights judged, the model not moved by it
    assert search.top_up == "random, replay 0.2" and model.weight.item() == 84.0  # went on with replay
    assert search.replay_reason == ("replay 0.2: dev nDCG@10 83.00 at alpha 1 against 80.00 at alpha 0.5 without "
                                    "(at the alphas the general rails allow, one-epoch probes)")
    assert search.judged["random"] == {"dev_ndcg@10": 80.0, "alpha": 0.5, "held_back": True}


def test_replay_that_scores_lower_at_its_alpha_is_left_out_and_a_rail_that_allows_no_alpha_loses():
    clock = Clock()
    model, run, judge, calls, _ = _fake(clock, {"random": 85.0, "random, replay 0.2": 84.0},
                                        {85.0: Judged(82.0, 0.7, True), 84.0: Judged(-math.inf, 0.4, True)})
    search = search_recipe(model, run, lrs=(5e-5,), epochs=2, budget_s=400, clock=clock, replays=(0.2,), judge=judge)
    assert search.top_up == "random" and calls[-1] == (5e-5, "random", None) and model.weight.item() == 86.0
    assert search.replay_reason.startswith("no replay: dev nDCG@10 82.00 at alpha 0.7 against no alpha allowed "
                                           "(took 0.4) with replay 0.2")
    assert search.judged["random, replay 0.2"]["dev_ndcg@10"] is None  # JSON-safe


def test_where_the_rails_allow_the_best_alpha_replay_is_not_probed_and_its_time_goes_on():
    clock = Clock()
    model, run, judge, calls, _ = _fake(clock, {"random": 85.0}, {85.0: Judged(85.0, 1.0, False)})
    search = search_recipe(model, run, lrs=(5e-5,), epochs=2, budget_s=400, clock=clock, replays=(0.2,), judge=judge)
    assert [c[1:] for c in calls] == [("random", 1), ("random", None)]
    assert search.replay_reason == ("no replay: the general rails allowed alpha 1, the best dev score, at lr 5e-05; "
                                    "replay 0.2 not probed")
    assert calls[0][0] == 5e-5 and search.top_up == "random"


@pytest.mark.slow
def test_training_with_general_pairs_probes_replay_and_records_the_choice(reg):  # noqa: F811
    from embedops.cli.train import describe_training
    from embedops.trainer.fit import fit

    # a general limit no alpha can keep: the rails hold every alpha back, so replay is probed (and
    # cannot win: neither side has an allowed alpha)
    config = TrainConfig(epochs=1, batch_size=8, eval_fraction=0.2, lr_grid=(1e-3,), general_retrieval=None,
                         max_general_drop=-100.0)
    result = fit(reg, "tiny@1", DOMAIN, general_pairs=GENERAL, config=config)
    m, search = result.metrics, result.metrics["recipe_search"]
    assert [t["top_up"] for t in search["trials"]] == ["random", "random, replay 0.2"]
    assert set(search["judged"]) == {"random", "random, replay 0.2"}
    r = m["recipe"]
    assert r["replays_tried"] == [0.0, 0.2] and r["replay_fraction"] == 0.0 and r["replayed_pairs"] == 0
    assert result.model.params["chosen"]["replay_fraction"] == 0.0
    assert r["replay_rule"].startswith("30 general pairs: dev chooses between no replay and 0.2 where the general "
                                       "rails hold alpha back; no replay: dev nDCG@10 no alpha allowed")
    assert "replay none: " + r["replay_rule"] in describe_training(m)
    # without general pairs nothing is probed and the report says nothing of replay
    plain = fit(reg, "tiny@1", DOMAIN, config=config)
    assert [t["top_up"] for t in plain.metrics["recipe_search"]["trials"]] == ["random"]
    assert plain.metrics["recipe"]["replay_rule"] == "no general pairs (--general): no replay"
    assert not any(line.startswith("replay") for line in describe_training(plain.metrics))


def test_the_rate_probes_keep_their_share_of_the_budget_when_replay_may_follow():
    shares = []
    for replays in ((), (0.2,)):
        clock = Clock()
        model, run, judge, calls, _ = _fake(clock, {"random": 85.0}, {85.0: Judged(85.0, 1.0, False)})
        deadlines = []
        search_recipe(model, lambda *a: deadlines.append(a[2]) or run(*a), lrs=(5e-5,), epochs=2, budget_s=400,
                      clock=clock, top_ups=("random", "random"), replays=replays, judge=judge)
        shares.append(deadlines[0])
    assert shares[0] == shares[1] == pytest.approx(400 / 3)  # two probes and going on; none kept for replay
