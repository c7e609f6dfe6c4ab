"""The promotion rule at the bottom: Registry.promote is the only way to point an alias at a new
index, and a guard report authorises exactly what it was bound to."""

import ast

import pytest

from helpers import PASSING_GATES, REPO, SAMPLE_DOCS, binding_for, put_report, write_jsonl
from embedops.errors import AliasConflictError, PromotionRefused, UsageError
from embedops.registry import Policy, Registry
from embedops.reembed import IndexBuild
from embedops.store import Store

@pytest.fixture
def two_indexes(tmp_path, tiny_model_dir):
    """A store with the 5 sample documents and two ready indexes of them (same model)."""
    reg = Registry(Store.open(str(tmp_path / "store")))
    reg.models.register("tiny", tiny_model_dir)
    reg.corpora.add("ops", write_jsonl(tmp_path / "docs.jsonl", SAMPLE_DOCS))
    a = IndexBuild(reg, "tiny@1", "ops").run().index
    b = IndexBuild(reg, "tiny@1", "ops").run().index
    return reg, a, b


def test_library_promotion_needs_a_report_or_an_audited_override(two_indexes):
    reg, a, b = two_indexes
    with pytest.raises(PromotionRefused, match="no guard report"):
        reg.promote(a.index_id)
    with pytest.raises(UsageError, match="needs a reason"):
        reg.promote(a.index_id, override=True)
    assert reg.aliases.get("production") is None  # nothing switched by the refusals
    state = reg.promote(a.index_id, override=True, reason="first index, nothing to compare with")
    assert state.override and state.report_id is None
    assert [x.name for x in reg.overridden_aliases()] == ["production"]
    events = [e for e in reg.history() if e.action == "promote.override"]
    assert events and events[-1].reason == "first index, nothing to compare with"

    report = put_report(reg, binding_for(reg, b))
    state = reg.promote(b.index_id)
    assert state.report_id == report.report_id and not state.override
    assert reg.overridden_aliases() == []  # the flag lasts until the alias moves
    alias_events = [e for e in reg.history() if e.action == "alias.promote"]
    assert [e.details["override"] for e in alias_events] == [True, False]


def test_a_report_made_against_production_a_cannot_promote_over_b(two_indexes, tiny_model_b):
    reg, a, b = two_indexes
    reg.promote(a.index_id, override=True, reason="start")
    reg.models.register("tiny", tiny_model_b)
    c = IndexBuild(reg, "tiny@2", "ops").run().index
    put_report(reg, binding_for(reg, c))  # judged while production was a
    reg.promote(b.index_id, override=True, reason="someone else promoted b")
    with pytest.raises(PromotionRefused, match=f"stale: production pointed at {a.index_id} .* points at {b.index_id}"):
        reg.promote(c.index_id)
    assert reg.aliases.current("production") == b.index_id
    reg.rollback(reason="back to a")  # production is where the report saw it again: the report holds
    assert reg.promote(c.index_id).value == c.index_id


@pytest.mark.parametrize("change, message", [
    ({"table_version": 999}, "table version 999"),
    ({"model_digest": "0" * 64}, "model digest 000000000000"),
    ({"policy_hash": "0" * 16}, "policy 0000000000000000"),
    ({"alias": "shadow"}, "alias 'shadow', not 'production'"),
    ({"corpus_version": 0}, "corpus 'ops' at version 0"),
])
def test_a_report_authorises_only_what_it_was_bound_to(two_indexes, change, message):
    reg, a, b = two_indexes
    reg.promote(a.index_id, override=True, reason="start")
    put_report(reg, binding_for(reg, b, **change))
    with pytest.raises(PromotionRefused, match=message):
        reg.promote(b.index_id)
    assert reg.aliases.current("production") == a.index_id


def test_required_gates_failed_reports_gold_and_general_sets(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, override=True, reason="start")
    skipped = [g if g["name"] != "forgetting" else {"name": "forgetting", "status": "skip", "reason": "no --general"}
               for g in PASSING_GATES]
    put_report(reg, binding_for(reg, b, general_digests={}), gates=skipped)
    with pytest.raises(PromotionRefused, match="required gate 'forgetting' .*skip"):
        reg.promote(b.index_id)
    # a policy that does not require the forgetting gate accepts it (its own hash, its own report)
    lenient = Policy(required_gates=("domain", "onnx_parity", "index_integrity"))
    put_report(reg, binding_for(reg, b, policy=lenient, general_digests={}), gates=skipped)
    with pytest.raises(PromotionRefused, match="was not run on the general set"):
        reg.promote(b.index_id, policy=lenient, general_digests=["s" * 16])
    with pytest.raises(PromotionRefused, match="another gold set"):
        reg.promote(b.index_id, policy=lenient, gold_digest="x" * 16)
    assert reg.promote(b.index_id, policy=lenient, gold_digest="g" * 16).value == b.index_id
    reg.rollback(reason="next case")
    put_report(reg, binding_for(reg, b), gates=PASSING_GATES[:1] + [{"name": "onnx_parity", "status": "fail",
                                                                     "reason": "cosine"}], verdict="fail")
    with pytest.raises(PromotionRefused, match="failed: onnx_parity"):
        reg.promote(b.index_id)


def test_promotion_is_a_compare_and_swap_against_what_the_check_saw(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, override=True, reason="start")
    put_report(reg, binding_for(reg, b))
    with pytest.raises(AliasConflictError):
        reg.promote(b.index_id, expect="some-other-index")
    assert reg.promote(b.index_id, expect=a.index_id).value == b.index_id


def test_rollback_needs_no_report(two_indexes):
    reg, a, b = two_indexes
    reg.promote(a.index_id, override=True, reason="start")
    reg.promote(b.index_id, override=True, reason="second")
    assert reg.rollback(reason="no report anywhere").value == a.index_id
    assert reg.reports.for_index(a.index_id) == []


def test_no_code_outside_the_registry_writes_an_alias():
    """The compare-and-swap primitives are called only from embedops.registry's Registry."""
    callers = []
    for folder in ("embedops",):  # registry/, reembed/, trainer/, guards/ are links into it
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("_switch", "_rollback", "_set_canary", "switch"):
                    callers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert callers and all(c.startswith(("embedops/registry/__init__.py", "embedops/registry/aliases.py")) for c in callers), callers
