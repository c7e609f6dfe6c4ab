"""The guards judge only on real evidence: each way a damaged model got through before is refused.

The damaged model is the issue's recipe: all-MiniLM-L6-v2 with noise of 0.5 x each weight's std,
registered without --parent (so its lineage root is itself), guarded and promoted through the CLI.
"""

import json

import pytest

from guard_helpers import RUNBOOKS, SMALL_GOLD_TOML, damaged_copy
from helpers import StoreCli, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def damaged(minilm_store, tmp_path_factory):
    """(cli, candidate index id, policy file): the damaged model's index of the runbooks."""
    reg, base = minilm_store
    root = tmp_path_factory.mktemp("damaged")
    cli = StoreCli(str(reg.store.root))
    cli("model", "register", "damaged", damaged_copy(root / "model", noise=0.5))  # no --parent
    index_id = cli("index", "build", "damaged@1", "--corpus", "runbooks").stdout.strip()
    policy = root / "policy.toml"
    policy.write_text(SMALL_GOLD_TOML)  # the runbooks have 10 gold queries; the default minimum is 50
    return cli, index_id, policy


def _guard(cli, index_id, gold, general, policy=None):
    """Run `guard --json` (exit 1 expected), check `promote` refuses; the report and its gates by name."""
    policy_args = ("--policy", policy) if policy else ()
    report = json.loads(cli("guard", index_id, "--json", "--gold", gold, "--general", general, *policy_args,
                            expect=1).stdout)
    refused = cli("promote", index_id, *policy_args, expect=1)
    assert f"cannot promote {index_id}" in " ".join(refused.stderr.split())
    return report, {g["name"]: g for g in report["gates"]}


def test_gold_qrels_naming_documents_absent_from_the_corpus_fail(damaged, sts_file, tmp_path):
    cli, index_id, policy = damaged
    gold = tmp_path / "gold"
    write_jsonl(gold / "queries.jsonl", [json.loads(l) for l in (RUNBOOKS / "queries.jsonl").read_text().splitlines()])
    (gold / "qrels").mkdir()
    rows = [l.split("\t") for l in (RUNBOOKS / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    (gold / "qrels" / "test.tsv").write_text("".join(f"{q}\tv2-{d}\t{r}\n" for q, d, r in rows))  # re-chunked ids
    report, gates = _guard(cli, index_id, gold, sts_file, policy)
    domain = gates["domain"]
    assert domain["status"] == "fail" and "10 of 10 relevant judgements (100%) name documents absent" in domain["reason"]
    assert "v2-rb-001" in domain["reason"] and "version" in domain["reason"]
    assert domain["evidence"]["judgeable_queries"] == 0


def test_a_one_query_gold_set_fails_for_want_of_evidence(damaged, sts_file, tmp_path):
    cli, index_id, policy = damaged
    gold = tmp_path / "gold"
    first = json.loads((RUNBOOKS / "queries.jsonl").read_text().splitlines()[0])
    write_jsonl(gold / "queries.jsonl", [first])
    (gold / "qrels").mkdir()
    qrel = next(l for l in (RUNBOOKS / "qrels" / "test.tsv").read_text().splitlines() if l.startswith(first["_id"]))
    (gold / "qrels" / "test.tsv").write_text(qrel + "\n")
    for p in (policy, None):  # the lowered minimum (10) and the default (50)
        report, gates = _guard(cli, index_id, gold, sts_file, p)
        assert gates["domain"]["status"] == "fail"
        assert "too little evidence: 1 gold query has a relevant document" in gates["domain"]["reason"]


def test_a_two_row_general_file_fails_naming_it(damaged, tmp_path):
    cli, index_id, policy = damaged
    two = tmp_path / "two-rows.tsv"
    two.write_text("score\tsentence1\tsentence2\n5\ta cat sits\ta cat is sitting\n0\ta cat sits\tstocks fell\n")
    report, gates = _guard(cli, index_id, RUNBOOKS, two, policy)
    forgetting = gates["forgetting"]
    assert forgetting["status"] == "fail" and f"{two}: 2 STS pairs, fewer than min_sts_pairs 20" in forgetting["reason"]
    constant = tmp_path / "constant.tsv"  # enough rows, but a correlation with constant gold scores is NaN
    constant.write_text("score\tsentence1\tsentence2\n" + "".join(f"3\tsentence {i}\tother {i}\n" for i in range(30)))
    report, gates = _guard(cli, index_id, RUNBOOKS, constant, policy)
    assert gates["forgetting"]["status"] == "fail" and "constant" in gates["forgetting"]["reason"]


def test_a_model_without_parent_is_judged_against_productions_model(damaged, minilm_store, sts_file):
    cli, index_id, policy = damaged
    report, gates = _guard(cli, index_id, RUNBOOKS, sts_file, policy)
    forgetting, domain = gates["forgetting"], gates["domain"]
    assert forgetting["status"] == "fail" and "vs minilm@1 (production's model" in forgetting["reason"]
    assert forgetting["value"] > 1.0 and forgetting["evidence"]["references"] == [
        {"model": "minilm@1", "role": "production's model"}]
    assert domain["status"] == "fail" and "may regress" in domain["reason"] and domain["evidence"]["half_width"] > 0
    assert report["inputs"]["forgetting_references"][0]["model"] == "minilm@1"
    reg, base = minilm_store
    assert reg.aliases.current("production") == base.index_id
    text = cli("guard", index_id, "--gold", RUNBOOKS, "--general", sts_file, "--policy", policy, expect=1).stdout
    assert "evidence, domain: 10 of 10 gold queries judgeable" in " ".join(text.split())
