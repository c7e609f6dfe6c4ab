"""The domain gate's two rules: a new index of the serving model must be no worse; a fine-tune that
would replace the serving model must show a measured lift (the CI's lower bound above 0)."""

from types import SimpleNamespace

from embedops.guards import Policy
from embedops.guards.domain import _points, domain_gate, lift_required
from embedops.index.reader import Hit

QUERIES = {f"q{i}": f"question {i}" for i in range(60)}
QRELS = {f"q{i}": {f"d{i}": 1} for i in range(60)}
DOCS = {f"d{i}" for i in range(100)}
POLICY = Policy(bootstrap_resamples=500)
A_FINE_TUNE = "minilm@2 is a fine-tune (of minilm@1) that would replace minilm@1"


class RankedAt:
    """An index that ranks each query's relevant document at ``rank(query number)`` (1-based) among
    fillers: what the gate searches, without a model."""

    def __init__(self, rank):
        self.rank = rank

    def doc_ids(self) -> set[str]:
        return set(DOCS)

    def search(self, texts, depth):
        i = int(texts[0].split()[-1])
        fillers = [d for d in sorted(DOCS) if d != f"d{i}"][: depth - 1]
        ranked = fillers[: self.rank(i) - 1] + [f"d{i}"] + fillers[self.rank(i) - 1:]
        return [[Hit(d, 1.0 - n / depth) for n, d in enumerate(ranked[:depth])]]


PRODUCTION = RankedAt(lambda i: 3)


def test_a_candidate_no_better_than_production_passes_as_a_re_embed_and_fails_as_a_fine_tune():
    same = RankedAt(lambda i: 3)
    as_index, _ = domain_gate(same, PRODUCTION, QUERIES, QRELS, POLICY)
    assert as_index.status == "pass" and as_index.evidence["rule"] == "non-inferiority"

    as_fine_tune, _ = domain_gate(same, PRODUCTION, QUERIES, QRELS, POLICY, must_lift=A_FINE_TUNE)
    assert as_fine_tune.status == "fail" and as_fine_tune.evidence["rule"] == "lift"
    assert as_fine_tune.reason.startswith(f"no measured lift: {A_FINE_TUNE}")
    assert "[+0.00, +0.00]" in as_fine_tune.reason and "fine_tunes_must_lift = false" in as_fine_tune.reason


def test_a_fine_tune_with_a_measured_lift_passes_and_says_so():
    better = RankedAt(lambda i: 1 if i % 3 else 3)  # two queries in three move to the top
    result, _ = domain_gate(better, PRODUCTION, QUERIES, QRELS, POLICY, must_lift=A_FINE_TUNE)
    assert result.status == "pass" and result.evidence["ci_low"] > 0
    assert "a measured lift, as a fine-tune must show" in result.reason


def test_a_fine_tune_that_may_regress_is_refused_for_the_regression_first():
    worse = RankedAt(lambda i: 10 if i % 2 else 3)
    result, _ = domain_gate(worse, PRODUCTION, QUERIES, QRELS, POLICY, must_lift=A_FINE_TUNE)
    assert result.status == "fail" and result.reason.startswith("ndcg@10 may regress")


def _ctx(parent, serving, **policy):
    model = SimpleNamespace(ref="minilm@2", parent=parent)
    return SimpleNamespace(policy=Policy(**policy), model=model, production_model=serving)


def test_only_a_fine_tune_replacing_another_model_must_lift():
    assert lift_required(_ctx("minilm@1", "minilm@1")) == A_FINE_TUNE
    assert lift_required(_ctx(None, "minilm@1")) is None  # an imported model, e.g. another base: no worse
    assert lift_required(_ctx("minilm@1", "minilm@2")) is None  # a new index of the model that serves
    assert lift_required(_ctx("minilm@1", None)) is None  # nothing serves: the floor judges
    assert lift_required(_ctx("minilm@1", "minilm@1", fine_tunes_must_lift=False)) is None


def test_a_bound_that_would_round_to_zero_keeps_its_first_digit():
    # a lower bound of +0.003 is a measured lift: a reason reading [+0.00, ...] would hide why it passed
    assert [_points(x) for x in (0.0026, -0.0004, 0.0, 0.26, -1.434)] == ["+0.003", "-0.0004", "+0.00", "+0.26", "-1.43"]
