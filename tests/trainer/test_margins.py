"""The mining margin as a recipe choice: `pairs mine` keeps the candidates up to a looser margin with
their scores, and `embedops train` filters them again at a margin dev chooses (or the one given)."""

import json

import pytest

from embedops.errors import InputError, UsageError
from embedops.trainer.config import TrainConfig
from embedops.trainer.dataset import training_data
from embedops.trainer.margins import margins_to_try, parse_rule, refilter, rule_label
from embedops.trainer.pairs import MinedCandidates, TrainingPair, read_pairs, write_pairs

from test_mining_and_training import _mine, pairs_for, reg  # noqa: F401  (the fixture)


def mined_pair(i: int, scores: list[float], positive: float = 1.0) -> TrainingPair:
    """Query i with candidates scored ``scores`` (rank order); negatives as mining at 0.95 kept them."""
    record = MinedCandidates((0.95, 1.0), 2, positive, tuple((f"cand {i}.{j}", s) for j, s in enumerate(scores)))
    return TrainingPair(f"query {i}", f"doc {i}", negatives=record.negatives_at(0.95), mined=record)


def test_negatives_at_a_margin_are_the_first_candidates_under_it_and_the_range_is_enforced():
    record = mined_pair(0, [0.99, 0.97, 0.9, 0.8]).mined
    assert record.negatives_at(0.95) == ["cand 0.2", "cand 0.3"]
    assert record.negatives_at(1.0) == ["cand 0.0", "cand 0.1"]
    assert record.negatives_at(0.98) == ["cand 0.1", "cand 0.2"]
    with pytest.raises(ValueError, match="outside the mined range 0.95-1"):
        record.negatives_at(0.9)


def test_mining_with_a_try_margin_keeps_what_mining_at_either_margin_would_have(reg):  # noqa: F811
    pairs = pairs_for(reg)
    strict, _ = _mine(reg, pairs, num_negatives=2, margin=0.95)
    loose, _ = _mine(reg, pairs, num_negatives=2, margin=1.0)
    both, report = _mine(reg, pairs, num_negatives=2, margin=0.95, try_margin=1.0)
    assert [p.negatives for p in both] == [p.negatives for p in strict]  # the pairs' negatives: as before
    assert [p.mined.negatives_at(0.95) for p in both] == [p.negatives for p in strict]
    assert [p.mined.negatives_at(1.0) for p in both] == [p.negatives for p in loose]
    assert report.try_margin == 1.0
    assert report.pairs_changed_at_try_margin == sum(a.negatives != b.negatives for a, b in zip(strict, loose))
    assert report.pairs_changed_at_try_margin >= 1  # the PGX runbook's near-duplicate scores between the two
    assert all(p.mined is None for p in strict)  # no try margin: no record
    with pytest.raises(ValueError, match="below margin"):
        _mine(reg, pairs, margin=0.95, try_margin=0.9)


def test_the_mined_record_survives_the_pairs_file_and_a_bad_one_is_named(tmp_path):
    pairs = [mined_pair(0, [0.99, 0.9, 0.8], positive=0.7)]
    path = write_pairs(tmp_path / "mined.jsonl", pairs)
    assert read_pairs(path) == pairs
    line = json.loads(path.read_text())
    line["mined"]["candidates"] = [["text", "high"]]
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert "mined.jsonl:1" in str(err.value) and "mined" in str(err.value) and "[text, score]" in str(err.value)


def test_rule_labels_name_the_top_up_and_the_margin():
    assert rule_label("random", None) == "random" and parse_rule("random") == ("random", None)
    assert rule_label("drop", 1.0) == "drop, margin 1" and parse_rule("drop, margin 1") == ("drop", 1.0)


def test_dev_chooses_the_margin_only_where_it_fills_many_short_pairs_and_a_given_one_must_be_mined_for():
    short = [mined_pair(i, [0.99, 0.97, 0.9]) for i in range(6)]  # one negative at 0.95, two at 1.0
    swapped = [mined_pair(i + 6, [0.99, 0.9, 0.8]) for i in range(14)]  # full at both, other negatives at 1.0
    assert margins_to_try("auto", short + swapped, on_dev=True) == (
        (None, 1.0), "6 of 20 pairs short of negatives at margin 0.95, 6 of them get more at 1 (over 25% of the pairs): "
                     "dev chooses between 0.95 and 1")
    # many pairs would get other negatives, but few are short (SciFact's case): not worth a probe's budget
    assert margins_to_try("auto", short[:4] + swapped, on_dev=True) == (
        (None,), "4 of 18 pairs short of negatives at margin 0.95, 4 of them get more at 1 (at most 25% of the pairs): "
                 "as mined")
    # short for another reason (known positives fill the window: TREC DL 2019's case): not the margin's doing
    hopeless = [mined_pair(i + 20, []) for i in range(8)]  # no candidate under either margin
    assert margins_to_try("auto", short[:2] + hopeless, on_dev=True) == (
        (None,), "10 of 10 pairs short of negatives at margin 0.95, 2 of them get more at 1 (at most 25% of the "
                 "pairs): as mined")
    assert margins_to_try("auto", short + swapped, on_dev=False)[0] == (None,)  # a fixed recipe: nothing to choose on
    plain = [TrainingPair("q", "d", negatives=["n"])]
    assert margins_to_try("auto", plain, on_dev=True) == ((None,), "as mined (the pairs carry no candidates for "
                                                                   "another margin)")
    assert margins_to_try(0.97, short, on_dev=True) == ((0.97,), "margin 0.97, as given")
    with pytest.raises(UsageError, match="outside the margins the pairs were mined for"):
        margins_to_try(0.9, short, on_dev=True)
    with pytest.raises(UsageError, match="no pair carries them"):
        margins_to_try(1.0, plain, on_dev=True)
    with pytest.raises(UsageError, match="--margin takes 'auto' or a number above 0"):
        TrainConfig(margin="loose")


def test_a_margin_rule_filters_the_train_pairs_again_and_leaves_dev_as_mined():
    pairs = [mined_pair(i, [0.99, 0.97, 0.9, 0.8]) for i in range(20)]
    config = TrainConfig(eval_fraction=0.2, interpolate=None)
    as_mined = training_data(pairs, config, top_up="random")
    looser = training_data(pairs, config, top_up="random, margin 1")
    assert looser.rule == "random, margin 1" and looser.margin == 1.0 and as_mined.rule == "random"
    n = {p.query: p.query.split()[1] for p in pairs}
    assert all(p.negatives == [f"cand {n[p.query]}.2", f"cand {n[p.query]}.3"] for p in as_mined.train)
    assert all(p.negatives == [f"cand {n[p.query]}.0", f"cand {n[p.query]}.1"] for p in looser.train)
    assert len(looser.train) == len(as_mined.train) == 16
    assert looser.held_out == as_mined.held_out  # the dev set every rule is scored on
    assert looser.dataset["negative_1"][0].endswith(".0")
    assert refilter(as_mined.held_out, 1.0) != as_mined.held_out


@pytest.mark.slow
def test_auto_probes_the_looser_margin_on_dev_and_records_the_margin_kept(reg):  # noqa: F811
    from embedops.cli.train import describe_training
    from embedops.trainer.fit import fit

    pairs = [mined_pair(i, [0.99, 0.97, 0.9]) for i in range(40)]  # short at 0.95, full at 1.0
    pairs = [TrainingPair(p.query, f"runbook {i} restart the service", negatives=p.negatives, mined=p.mined)
             for i, p in enumerate(pairs)]
    config = TrainConfig(epochs=1, batch_size=8, interpolate=None, eval_fraction=0.2, lr_grid=(5e-4, 1e-3))
    result = fit(reg, "tiny@1", pairs, config=config)
    m, search = result.metrics, result.metrics["recipe_search"]
    rates = search["trials"][:2]
    better = max(rates, key=lambda t: (t["best"]["domain_ndcg@10"], -rates.index(t)))["lr"]
    # every pair has 1 of its 2 negatives at 0.95 (as many as the best-served: no top-up probe), 2 at 1.0
    assert [(t["lr"], t["top_up"]) for t in search["trials"]] == [
        (5e-4, "random"), (1e-3, "random"), (better, "random, margin 1")]
    kept_margin = parse_rule(search["top_up"])[1] or 0.95
    assert result.model.params["chosen"]["margin"] == kept_margin == m["recipe"]["margin"]
    assert m["recipe"]["margins_tried"] == [0.95, 1.0]
    assert m["recipe"]["margin_rule"].startswith("40 of 40 pairs short of negatives at margin 0.95, 40 of them get "
                                                 "more at 1 (over 25% of the pairs)")
    assert f"mining margin {kept_margin:g}: " + m["recipe"]["margin_rule"] in describe_training(m)
