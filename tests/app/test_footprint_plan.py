"""`embedops index plan`: each smaller footprint of an index measured on the user's gold set
against exact float32 search, with the domain gate's paired interval (issue #36)."""

import json

import pytest

from embedops.app.footprint_plan import plan_footprints
from embedops.errors import UsageError
from embedops.registry import Policy
from helpers import NOTE_TOPICS, StoreCli, bridged_notes, tree_snapshot

POLICY = Policy(min_gold_queries=5, bootstrap_resamples=500)


@pytest.fixture
def planned(reg, tmp_path, tiny_model_b):
    """tiny@1's index of 90 notes and a gold set: each topic asked 2 ways, its notes relevant."""
    index = bridged_notes(reg, tmp_path, tiny_model_b)
    gold = tmp_path / "gold"
    (gold / "qrels").mkdir(parents=True)
    queries = [(f"q{t}-{w}", f"{how} {topic}") for t, topic in enumerate(NOTE_TOPICS)
               for w, how in enumerate(("fix", "runbook for"))]
    (gold / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": text}) + "\n" for q, text in queries))
    rows = [f"{q}\td{i}\t1" for q, _ in queries for i in range(90) if i % 8 == int(q[1:].split("-")[0])]
    (gold / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return reg, index, gold


def test_each_footprint_is_measured_against_float32_and_the_smallest_within_the_loss_is_picked(planned):
    reg, index, gold = planned
    plan = plan_footprints(reg, index.index_id, gold, dims=[16], max_loss=100.0, policy=POLICY)
    rows = {r.name: r for r in plan.rows}
    assert list(rows) == ["float32", "int8", "binary", "binary+int8", "binary+float32", "float32@16"]
    assert plan.queries == 16 and plan.documents == 90 and plan.dim == 32
    base = rows["float32"]
    assert (base.mean_loss, base.ci_low, base.ci_high, base.searched_bytes) == (0.0, 0.0, 0.0, 128)
    assert rows["binary"].searched_bytes == 4 and rows["binary+int8"].kept_bytes == 36
    for r in plan.rows:  # the loss is float32's score minus the footprint's, inside its own interval
        assert r.mean_loss == pytest.approx(base.ndcg - r.ndcg, abs=1e-9)
        assert r.ci_low <= -r.mean_loss + 1e-9 <= r.ci_high + 2e-9
    assert plan.chosen == "binary"  # everything is within 100 points: the fewest bytes searched wins
    assert plan.build_command == f"embedops index build tiny@1 --corpus {index.corpus} --vectors binary --rescore none"
    assert any("not trained with a Matryoshka loss" in n for n in plan.notes)
    strict = plan_footprints(reg, index.index_id, gold, max_loss=0.0, policy=POLICY)
    assert all(r.within == (r.ci_low >= 0.0) for r in strict.rows) and strict.chosen in {"float32", "int8"}


def test_a_gold_set_too_thin_to_judge_is_refused(planned):
    reg, index, gold = planned
    with pytest.raises(UsageError, match="too little evidence: 16 gold queries .* fewer than min_gold_queries 50"):
        plan_footprints(reg, index.index_id, gold, policy=Policy())
    with pytest.raises(UsageError, match="--max-loss must be a number of points >= 0"):
        plan_footprints(reg, index.index_id, gold, max_loss=float("nan"), policy=POLICY)


def test_the_cli_prints_the_plan_in_80_columns_and_writes_nothing(planned, tmp_path):
    reg, index, gold = planned
    (tmp_path / "embedops.toml").write_text("[guards]\nmin_gold_queries = 5\nbootstrap_resamples = 500\n")
    cli = StoreCli(str(reg.store.root))
    before = tree_snapshot(reg.store.root)
    shown = cli("index", "plan", index.index_id, "--gold", gold, "--dims", "16", "--max-loss", "100",
                "--policy", tmp_path / "embedops.toml").stdout
    assert "binary+int8" in shown and "float32@16" in shown and "smallest within 100 points: binary" in shown
    assert "--vectors binary --rescore none" in shown  # the build command of the pick, to guard and promote
    assert max(len(line) for line in shown.splitlines()) <= 80
    data = json.loads(cli("index", "plan", index.index_id, "--gold", gold, "--json", "--policy",
                          tmp_path / "embedops.toml").stdout)
    assert data["chosen"] in {r["name"] for r in data["rows"]} and data["confidence"] == 0.95
    assert tree_snapshot(reg.store.root) == before
    bad = cli("index", "plan", index.index_id, "--gold", gold, "--dims", "12x", expect=2)
    assert "--dims takes whole numbers" in bad.stderr
    bad = cli("index", "plan", index.index_id, "--gold", gold, "--footprints", "pq4", expect=2)
    assert "unknown footprint 'pq4'" in bad.stderr
