"""The top-up rule: what fills a pair that the false-negative filter left short of mined negatives.
"random" tops it up with other pairs' positives, "drop" leaves it out; with "auto", dev chooses
between them when many pairs are short (where each document is relevant to many queries, a random
other positive is often an unlabelled positive of the anchor)."""

import pytest
import torch

from embedops.errors import UsageError
from embedops.trainer.config import TrainConfig
from embedops.trainer.dataset import top_ups_to_try, training_data
from embedops.trainer.pairs import TrainingPair
from embedops.trainer.select import search_recipe
from embedops.trainer.trial import Trial

from test_recipe_search import Clock


def pairs_with_short(full: int, short: int) -> list[TrainingPair]:
    """``full`` pairs with 2 mined negatives and ``short`` pairs with none, one query each."""
    made = [TrainingPair(f"query {i}", f"doc {i}", negatives=[f"neg {i}a", f"neg {i}b"]) for i in range(full)]
    return made + [TrainingPair(f"query s{i}", f"doc s{i}") for i in range(short)]


def test_drop_leaves_the_short_pairs_out_and_random_tops_them_up():
    pairs = pairs_with_short(40, 60) + [TrainingPair("query 0", "doc 0 again")]  # query 0 has two positives
    config = TrainConfig(eval_fraction=0.0, interpolate=None)
    random_ = training_data(pairs, config, top_up="random")
    drop = training_data(pairs, config, top_up="drop")
    assert (random_.short, random_.padded, len(random_.train)) == (61, 61, 101)
    assert (drop.short, drop.dropped, drop.padded, len(drop.train)) == (61, 61, 0, 40)
    assert {p.query for p in drop.train} == {f"query {i}" for i in range(40)}
    assert drop.negatives_per_pair == random_.negatives_per_pair == 2
    assert drop.dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    # a dropped pair's positive is still a known positive of its query: never a negative nor a batch-mate
    assert "doc 0 again" in drop.known["query 0"]
    with pytest.raises(UsageError, match="unknown top-up rule 'none'"):
        training_data(pairs, config, top_up="none")
    with pytest.raises(UsageError, match="unknown top-up rule"):
        TrainConfig(top_up="padded")


def test_dev_chooses_the_top_up_only_when_many_pairs_are_short():
    config = TrainConfig(eval_fraction=0.0, interpolate=None)
    many = training_data(pairs_with_short(100, 60), config)
    few = training_data(pairs_with_short(100, 20), config)
    assert top_ups_to_try(config, many, on_dev=True) == (("random", "drop"),
                                                         "60 of 160 pairs short of mined negatives (over 25%): dev chooses")
    assert top_ups_to_try(config, few, on_dev=True)[0] == ("random",)  # 17%: not worth a probe
    assert top_ups_to_try(config, many, on_dev=False)[0] == ("random",)  # a fixed recipe: nothing to choose on
    assert top_ups_to_try(TrainConfig(top_up="drop", eval_fraction=0.0, interpolate=None), few, on_dev=True)[0] == ("drop",)
    tiny = training_data(pairs_with_short(10, 60), config)  # dropping would leave under two batches of 32
    assert top_ups_to_try(config, tiny, on_dev=True)[0] == ("random",)
    assert top_ups_to_try(config, training_data(pairs_with_short(30, 0), config), on_dev=True) == (
        ("random",), "no pair short of mined negatives")


def test_the_search_probes_the_other_top_up_at_the_best_rate_and_goes_on_with_the_better():
    clock = Clock()
    score = {(2e-5, "random"): 80.0, (5e-5, "random"): 85.0, (1e-4, "random"): 82.0, (5e-5, "drop"): 88.0}
    model = torch.nn.Linear(1, 1, bias=False)
    calls = []

    def run(lr, epochs, deadline, pause, top_up):
        calls.append((lr, top_up, pause, deadline))
        clock.now += 10.0
        best = score[(lr, top_up)] + (pause is None)  # going on improves by one point
        with torch.no_grad():
            model.weight.fill_(best)
        return Trial(lr=lr, epochs=epochs, steps=5, top_up=top_up, dev=[{"step": 5, "domain_ndcg@10": best}],
                     best={"step": 5, "epoch": 1.0, "domain_ndcg@10": best},
                     stopped="probe" if pause else "max epochs", seconds=10.0)

    search = search_recipe(model, run, lrs=(2e-5, 5e-5, 1e-4), epochs=3, budget_s=500, clock=clock,
                           top_ups=("random", "drop"))
    assert [(lr, t, p) for lr, t, p, _ in calls] == [(2e-5, "random", 1), (5e-5, "random", 1), (1e-4, "random", 1),
                                                     (5e-5, "drop", 1), (5e-5, "drop", None)]
    assert calls[0][3] == pytest.approx(100.0)  # four probes and going on: five equal shares
    assert (search.lr, search.top_up, search.best["domain_ndcg@10"], model.weight.item()) == (5e-5, "drop", 89.0, 89.0)
    assert search.kept().top_up == "drop" and search.kept().seconds == 20.0
    assert "negatives rules random / drop; lr 5e-05 with drop" in search.reason
    assert search.to_dict()["top_up"] == "drop" and search.to_dict()["trials"][-1]["top_up"] == "drop"


def test_a_better_random_probe_keeps_random_and_drop_stays_a_probe():
    clock = Clock()
    score = {(5e-5, "random"): 85.0, (5e-5, "drop"): 84.0}
    model = torch.nn.Linear(1, 1, bias=False)
    seen = []

    def run(lr, epochs, deadline, pause, top_up):
        seen.append((top_up, pause))
        clock.now += 10.0
        best = score[(lr, top_up)] + (pause is None)
        with torch.no_grad():
            model.weight.fill_(best)
        return Trial(lr=lr, epochs=epochs, top_up=top_up, best={"step": 5, "epoch": 1.0, "domain_ndcg@10": best},
                     stopped="probe" if pause else "max epochs")

    search = search_recipe(model, run, lrs=(5e-5,), epochs=2, budget_s=300, clock=clock, top_ups=("random", "drop"))
    assert seen == [("random", 1), ("drop", 1), ("random", None)]  # one rate: the two rules are the probes
    assert (search.top_up, model.weight.item()) == ("random", 86.0)


@pytest.mark.slow
def test_training_records_the_top_up_rule_in_the_report_and_the_registry(reg):
    from embedops.cli.train import describe_training
    from embedops.trainer.fit import fit

    pairs = [TrainingPair(f"fix {i}", f"runbook {i} restart the service", negatives=[f"runbook {i + 1} restart"])
             for i in range(24)] + [TrainingPair(f"help {i}", f"guide {i} rotate the keys") for i in range(24)]
    result = fit(reg, "tiny@1", pairs, config=TrainConfig(epochs=1, lr=5e-4, batch_size=8, interpolate=None,
                                                         eval_fraction=0.0, top_up="drop"))
    chosen, m = result.model.params["chosen"], result.metrics
    assert chosen["top_up"] == "drop" and result.model.params["top_up"] == "drop"
    assert (m["train_pairs"], m["pairs_short_of_negatives"], m["pairs_dropped_short_of_negatives"]) == (24, 24, 24)
    assert m["recipe"]["top_up_rule"] == "24 of 48 pairs short of mined negatives: drop, as given"
    lines = describe_training(m)
    assert "24 pairs had fewer than 1 mined negatives and were left out of training (top-up: drop)" in lines
    assert "top-up rule: 24 of 48 pairs short of mined negatives: drop, as given" in lines


@pytest.mark.slow
def test_auto_probes_both_rules_on_dev_and_registers_the_data_of_the_one_kept(reg):
    from embedops.trainer.fit import fit

    full = [TrainingPair(f"fix {i}", f"runbook {i} restart the service", negatives=[f"runbook {i + 1} restart"])
            for i in range(40)]
    short = [TrainingPair(f"help {i}", f"guide {i} rotate the keys") for i in range(40)]
    config = TrainConfig(epochs=1, batch_size=8, interpolate=None, eval_fraction=0.2, lr_grid=(5e-4, 1e-3))
    result = fit(reg, "tiny@1", full + short, config=config)
    m, search = result.metrics, result.metrics["recipe_search"]
    rates = search["trials"][:2]  # the rate probes, then drop at the better of them (the first on a tie)
    better = max(rates, key=lambda t: (t["best"]["domain_ndcg@10"], -rates.index(t)))["lr"]
    assert [(t["lr"], t["top_up"]) for t in search["trials"]] == [(5e-4, "random"), (1e-3, "random"), (better, "drop")]
    kept = search["top_up"]
    assert result.model.params["chosen"]["top_up"] == kept == m["recipe"]["top_up"]
    assert m["recipe"]["top_ups_tried"] == ["drop", "random"] and "dev chooses" in m["recipe"]["top_up_rule"]
    held = m["held_out_pairs"]
    short_trained = m["pairs_short_of_negatives"]
    assert m["train_pairs"] == (80 - held - short_trained if kept == "drop" else 80 - held)
    assert m["pairs_dropped_short_of_negatives"] == (short_trained if kept == "drop" else 0)
    from embedops.cli.train import describe_training

    report = "\n".join(describe_training(m))
    assert f"dev curve of lr {search['lr']:g}, top-up {kept} (step: nDCG@10)" in report
    assert f" {'drop':<6} " in report and f" {'random':<6} " in report  # each trial's rule in its line
