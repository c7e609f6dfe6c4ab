import json

import pytest

from embedops.guards import Policy, PromotionRefused, passing_report, run_guards
from embedops.guards.policy import load_policy
from embedops.errors import InputError
from embedops.reembed import IndexBuild, sync_index
from guard_helpers import RUNBOOKS, damaged_copy


pytestmark = pytest.mark.slow


def test_damaged_model_is_blocked_with_the_reason_in_the_report(minilm_store, sts_file, tmp_path):
    reg, base = minilm_store
    mv = reg.models.register("minilm", damaged_copy(tmp_path / "damaged"), parent="minilm@1", notes="perturbed")
    cand = IndexBuild(reg, mv.ref, "runbooks").run().index
    report = run_guards(reg, cand.index_id, gold=RUNBOOKS, general=[sts_file], html_dir=tmp_path / "html")
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
        passing_report(reg, cand.index_id, Policy())


def test_candidate_identical_to_production_does_not_pass_a_positive_min_lift(minilm_store, sts_file):
    reg, base = minilm_store
    twin = IndexBuild(reg, "minilm@1", "runbooks").run().index  # same model, same corpus: no lift
    strict = Policy(min_lift=0.5, bootstrap_resamples=2000)
    report = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=strict)
    domain = next(g for g in report.gates if g.name == "domain")
    assert domain.status == "fail" and domain.value == pytest.approx(0.0) and "below the required" in domain.reason
    lenient = run_guards(reg, twin.index_id, gold=RUNBOOKS, general=[sts_file], policy=Policy(bootstrap_resamples=2000))
    assert lenient.verdict == "pass"
    assert {g.name: g.status for g in lenient.gates} == {
        "domain": "pass", "forgetting": "pass", "onnx_parity": "pass", "index_integrity": "pass", "latency": "skip"}


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
                   config=TrainConfig(epochs=1, batch_size=6, lr=2e-5, eval_fraction=0.0, interpolate="auto"))
    cand = IndexBuild(reg, result.model.ref, "runbooks").run().index
    report = run_guards(reg, cand.index_id, gold=RUNBOOKS, general=[sts_file], policy=Policy(bootstrap_resamples=2000))
    assert report.verdict == "pass", [(g.name, g.reason) for g in report.gates]

    policy = Policy(bootstrap_resamples=2000)
    assert passing_report(reg, cand.index_id, policy).report_id == report.stored.report_id
    with pytest.raises(PromotionRefused, match="policy"):
        passing_report(reg, cand.index_id, Policy(bootstrap_resamples=2000, max_drop=0.5))  # another policy
    with pytest.raises(PromotionRefused, match="no guard report"):
        passing_report(reg, base.index_id, policy)
    # a passing report for another model checksum does not count
    rec = reg.indexes.get(cand.index_id)
    reg.reports.put(index_id=cand.index_id, model_ref=rec.model_ref, model_digest="0" * 64,
                    table_version=rec.table_version, policy_hash=Policy(bootstrap_resamples=2000, min_lift=-5).hash,
                    verdict="pass", inputs={}, gates=[])
    with pytest.raises(PromotionRefused, match="digest"):
        passing_report(reg, cand.index_id, Policy(bootstrap_resamples=2000, min_lift=-5))
    # the index moves to a new table version: the old report no longer counts
    reg.corpora.add("runbooks", _with_extra_doc(tmp_path))
    sync_index(reg, cand.index_id)
    with pytest.raises(PromotionRefused, match="table version"):
        passing_report(reg, cand.index_id, policy)
    reg.corpora.add("runbooks", RUNBOOKS)
    sync_index(reg, cand.index_id)


def _with_extra_doc(tmp_path):
    rows = [json.loads(l) for l in (RUNBOOKS / "corpus.jsonl").read_text().splitlines()]
    rows.append({"_id": "rb-999", "title": "Extra", "text": "A new runbook about log rotation."})
    path = tmp_path / "corpus-v2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_policy_file_overrides_defaults_and_rejects_unknown_settings(tmp_path):
    good = tmp_path / "embedops.toml"
    good.write_text("[guards]\nmin_lift = 0.5\nmax_drop = 2.0\n")
    policy = load_policy(good)
    assert (policy.min_lift, policy.max_drop, policy.tolerance) == (0.5, 2.0, 1.0)
    assert policy.hash != Policy().hash
    bad = tmp_path / "bad.toml"
    bad.write_text("[guards]\nmin_lfit = 0.5\n")
    with pytest.raises(InputError, match="guards.min_lfit"):
        load_policy(bad)
    with pytest.raises(InputError, match="no such policy"):
        load_policy(tmp_path / "absent.toml")
