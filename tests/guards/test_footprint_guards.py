"""The guards judge a smaller footprint (sign bits rescored with int8 codes) as they judge any index
(issue #36): one that keeps the model's quality promotes, serves and rolls back; one whose model
loses too much that way is refused with the measured loss."""

import pytest

from embedops.guards import PromotionRefused, run_guards
from embedops.index import IndexSettings
from embedops.reembed import IndexBuild
from embedops.registry import Searcher
from helpers import StoreCli
from guard_helpers import RUNBOOKS, runbooks_in_minilm_production, small_gold

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def runbooks(tmp_path_factory):
    """The 20 runbooks among 430 filler notes, indexed by minilm@1 (float32) in production."""
    return runbooks_in_minilm_production(tmp_path_factory.mktemp("footprints"))


def test_sign_bits_rescored_with_int8_that_keep_the_models_quality_promote_serve_and_roll_back(runbooks, sts_file):
    reg, base = runbooks
    small = IndexBuild(reg, "minilm@1", "runbooks", settings=IndexSettings(vectors="binary")).run().index
    report = run_guards(reg, small.index_id, gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    gates = {g.name: g for g in report.gates}
    assert report.verdict == "pass", [(g.name, g.status, g.reason) for g in report.gates]
    assert abs(gates["domain"].value) < 1.0  # measured against production's float32 vectors, query by query
    assert "binary+int8 vectors decode cleanly" in gates["index_integrity"].reason
    vs_float = gates["index_integrity"].evidence["vs_float32"]  # the top 10 against the model's float32 index
    assert vs_float["index_id"] == base.index_id and vs_float["sample"] == 10
    # sign bits change some of the top 10 (0.78 here) while the gold queries' nDCG@10 holds: the domain gate judges
    assert 0.5 <= vs_float["recall@10_vs_float32"] < 1.0 and "recall@10 vs exact float32" in gates["index_integrity"].reason
    assert reg.promote(small.index_id, policy=small_gold()).value == small.index_id
    found = Searcher(reg).search("the primary database is unreachable", k=3)
    assert found.index_id == small.index_id and found.hits[0].id.startswith("rb-")
    board = StoreCli(str(reg.store.root))("status").stdout
    assert "~ keeps binary+int8 vectors" in board and max(map(len, board.splitlines())) <= 80
    assert reg.rollback(reason="back to float32").value == base.index_id


def test_a_footprint_that_loses_more_than_the_policy_allows_is_refused_with_the_measured_loss(runbooks, sts_file):
    """MiniLM cut to 32 dimensions: its 32 sign bits pick the 40 candidates the int8 codes rescore
    (from 450 documents), and lose to the same model's 32 float32 dimensions in production."""
    reg, _ = runbooks
    cut = IndexBuild(reg, "minilm@1", "runbooks", settings=IndexSettings(dims=32), force_dims=True).run().index
    reg.promote(cut.index_id, "small", override=True, reason="float32 of 32 dimensions")
    bits = IndexBuild(reg, "minilm@1", "runbooks", settings=IndexSettings(vectors="binary", dims=32),
                      force_dims=True).run().index
    report = run_guards(reg, bits.index_id, gold=RUNBOOKS, general=[sts_file], policy=small_gold(), alias="small")
    domain = next(g for g in report.gates if g.name == "domain")
    assert report.verdict == "fail" and domain.status == "fail" and domain.value < 0  # its lower bound < -1
    assert "may regress" in domain.reason and "lower bound below -1" in domain.reason
    with pytest.raises(PromotionRefused, match="failed: domain"):
        reg.promote(bits.index_id, "small", policy=small_gold())
    assert reg.aliases.current("small") == cut.index_id
