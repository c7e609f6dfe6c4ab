import json

import pytest

from embedops.guards import PromotionRefused, passing_report, run_guards
from embedops.reembed import IndexBuild, sync_index
from guard_helpers import RUNBOOKS, damaged_copy, small_gold


pytestmark = pytest.mark.slow


def test_damaged_model_is_blocked_with_the_reason_in_the_report(minilm_store, sts_file, tmp_path):
    reg, base = minilm_store
    mv = reg.models.register("minilm", damaged_copy(tmp_path / "damaged"), parent="minilm@1", notes="perturbed")
    cand = IndexBuild(reg, mv.ref, "runbooks").run().index
    report = run_guards(reg, cand.index_id, gold=RUNBOOKS, general=[sts_file], html_dir=tmp_path / "html",
                        policy=small_gold())
    assert report.verdict == "fail"
    gates = {g.name: g for g in report.gates}
    assert gates["forgetting"].status == "fail" and "minilm@1" in gates["forgetting"].reason
    assert gates["forgetting"].value > 1.0
    stored = reg.reports.for_index(cand.index_id)[-1]
    assert stored.verdict == "fail" and stored.model_digest == mv.digest
    assert any(g["name"] == "forgetting" and g["status"] == "fail" for g in stored.gates)
    html = (tmp_path / "html" / "report.html").read_text()
    assert "FAIL" in html and "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert (tmp_path / "html" / "delta_histogram.png").stat().st_size > 1000
    with pytest.raises(PromotionRefused, match="failed: .*forgetting"):
        passing_report(reg, cand.index_id, small_gold())


def test_candidate_identical_to_production_does_not_pass_a_positive_min_lift(minilm_store, sts_file):
    reg, base = minilm_store
    twin = IndexBuild(reg, "minilm@1", "runbooks").run().index  # same model, same corpus: no lift
    strict = small_gold(min_lift=0.5)
    report = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=strict)
    domain = next(g for g in report.gates if g.name == "domain")
    assert domain.status == "fail" and domain.value == pytest.approx(0.0) and "below the required" in domain.reason
    lenient = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=small_gold())
    assert lenient.verdict == "pass"
    assert {g.name: g.status for g in lenient.gates} == {
        "domain": "pass", "slices": "pass", "forgetting": "pass", "onnx_parity": "pass", "index_integrity": "pass",
        "latency": "skip", "bridge_lift": "skip"}
    forgetting = next(g for g in lenient.gates if g.name == "forgetting")
    assert "production's model" in forgetting.reason and forgetting.evidence["references"] == []  # never vs itself


def test_fine_tuned_model_passes_and_promotion_needs_an_exactly_matching_report(minilm_store, sts_file, tmp_path):
    from embedops.trainer.pairs import TrainingPair
    from embedops.trainer.train import TrainConfig, train

    reg, base = minilm_store
    docs = {r["id"]: f"{r['title']} {r['text']}" for r in reg.corpora.documents("runbooks").to_pylist()}
    train_queries = {
        "rb-001": ["pgx primary unreachable", "fail over the database"], "rb-002": ["ORDERS lag", "consumer group stuck on poison message"],
        "rb-003": ["edge tls renewal failed", "acme challenge broken"], "rb-005": ["SESSIONS maxmemory", "login storm redis"],
        "rb-006": ["shipit rollback", "undo a deploy"], "rb-007": ["HAWK p95 alert", "search api slow"],
        "rb-012": ["PAYGATE webhook retries", "replay payment events"], "rb-013": ["OWL DAG failed", "warehouse etl rerun"],
        "rb-017": ["FLAGR kill switch", "disable feature for all tenants"],
    }
    pairs = [TrainingPair(q, docs[d], d) for d, qs in train_queries.items() for q in qs]
    result = train(reg, "minilm@1", pairs * 2, name="minilm", general_eval=sts_file,
                   config=TrainConfig(epochs=1, batch_size=6, lr=2e-5, eval_fraction=0.25, interpolate="auto"))
    cand = IndexBuild(reg, result.model.ref, "runbooks").run().index
    policy = small_gold(fine_tunes_must_lift=False)  # 10 gold queries cannot show this short run's lift
    report = run_guards(reg, cand.index_id, gold=RUNBOOKS, general=[sts_file], policy=policy)
    assert report.verdict == "pass", [(g.name, g.reason) for g in report.gates]
    binding = report.stored.binding
    assert (binding.alias, binding.alias_target, binding.corpus) == ("production", base.index_id, "runbooks")
    assert binding.gold_digest == report.stored.inputs["gold_hash"] and list(binding.general_digests) == [str(sts_file)]

    assert passing_report(reg, cand.index_id, policy).report_id == report.stored.report_id
    with pytest.raises(PromotionRefused, match="policy"):
        passing_report(reg, cand.index_id, small_gold(fine_tunes_must_lift=False, max_drop=0.5))  # another policy
    with pytest.raises(PromotionRefused, match="no guard report"):
        passing_report(reg, base.index_id, policy)
    # the index moves to a new table version: the old report no longer counts
    reg.corpora.add("runbooks", _with_extra_doc(tmp_path))
    sync_index(reg, cand.index_id)
    with pytest.raises(PromotionRefused, match="table version"):
        passing_report(reg, cand.index_id, policy)
    reg.corpora.add("runbooks", RUNBOOKS, replace=True)
    sync_index(reg, cand.index_id)


def test_a_report_without_a_general_benchmark_cannot_promote_under_the_default_policy(minilm_store):
    reg, base = minilm_store
    twin = IndexBuild(reg, "minilm@1", "runbooks").run().index
    report = run_guards(reg, twin.index_id, gold=RUNBOOKS, policy=small_gold(bootstrap_resamples=500))
    forgetting = next(g for g in report.gates if g.name == "forgetting")
    assert report.verdict == "fail" and forgetting.status == "fail"
    assert "required by the policy but skipped: no general benchmark" in forgetting.reason
    with pytest.raises(PromotionRefused, match="failed: forgetting"):
        reg.promote(twin.index_id, policy=small_gold(bootstrap_resamples=500))
    assert reg.aliases.current("production") == base.index_id


def test_a_first_promotion_needs_a_domain_floor_or_an_override(minilm_store, sts_file):
    reg, base = minilm_store
    policy = small_gold(bootstrap_resamples=500)
    unset = run_guards(reg, base.index_id, gold=RUNBOOKS, general=[sts_file], policy=policy, alias="canary")
    gates = {g.name: g for g in unset.gates}
    assert unset.verdict == "fail" and "required by the policy but skipped: no index serves the alias" in gates["domain"].reason
    # nothing serves the alias and minilm@1 has no parent: nothing to judge forgetting against, so no pass
    assert gates["forgetting"].status == "fail" and "nothing to compare minilm@1 with" in gates["forgetting"].reason
    assert gates["slices"].status == "fail"
    with pytest.raises(PromotionRefused, match="failed: domain"):
        reg.promote(base.index_id, "canary", policy=policy)
    # a policy that judges a first promotion by the floor alone says so in its required gates
    floored = small_gold(bootstrap_resamples=500, domain_floor=20.0,
                         required_gates=("domain", "onnx_parity", "index_integrity"))
    report = run_guards(reg, base.index_id, gold=RUNBOOKS, general=[sts_file], policy=floored, alias="canary")
    domain = next(g for g in report.gates if g.name == "domain")
    assert report.verdict == "pass" and domain.threshold == 20.0 and domain.value >= 20.0
    assert {g.name for g in report.gates if g.status == "skip"} == {"forgetting", "slices", "latency", "bridge_lift"}  # shown
    state = reg.promote(base.index_id, "canary", policy=floored)
    assert state.report_id == report.stored.report_id and state.previous is None
    too_high = small_gold(bootstrap_resamples=500, domain_floor=99.9)
    assert run_guards(reg, base.index_id, gold=RUNBOOKS, general=[sts_file], policy=too_high, alias="fresh").verdict == "fail"


def _with_extra_doc(tmp_path):
    rows = [json.loads(l) for l in (RUNBOOKS / "corpus.jsonl").read_text().splitlines()]
    rows.append({"_id": "rb-999", "title": "Extra", "text": "A new runbook about log rotation."})
    path = tmp_path / "corpus-v2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
