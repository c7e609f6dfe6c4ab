"""In-process CLI tests of 'embedops guard' and guarded 'embedops promote'."""

import json

import pytest

from helpers import StoreCli
from guard_helpers import RUNBOOKS, SMALL_GOLD_TOML

pytestmark = pytest.mark.slow


def test_guard_then_promote_without_force(minilm_store, sts_file, tmp_path):
    reg, base = minilm_store
    cli = StoreCli(str(reg.store.root))
    cand = cli("index", "build", "minilm@1", "--corpus", "runbooks", "--precision", "int8").stdout.strip()
    refused = cli("promote", cand, expect=1)
    assert "no guard report" in refused.stderr
    small = tmp_path / "small.toml"  # the runbooks have 10 gold queries: the default minimum is 50
    small.write_text(SMALL_GOLD_TOML)
    default = json.loads(cli("guard", cand, "--gold", RUNBOOKS, "--general", sts_file, "--json", expect=1).stdout)
    domain = next(g for g in default["gates"] if g["name"] == "domain")
    assert "too little evidence: 10 gold queries have a relevant document" in domain["reason"]
    result = cli("guard", cand, "--gold", RUNBOOKS, "--general", sts_file, "--html", tmp_path / "rep", "--policy", small)
    assert "PASS" in result.stdout and (tmp_path / "rep" / "report.html").is_file()
    assert "Loading weights" not in result.stdout + result.stderr  # no library progress bars
    data = json.loads(cli("guard", cand, "--gold", RUNBOOKS, "--general", sts_file, "--json", "--policy", small).stdout)
    assert data["verdict"] == "pass" and data["index_id"] == cand and data["table_version"] >= 1
    promoted = cli("promote", cand, "--expect", base.index_id, "--policy", small)
    assert "guard report" in promoted.stdout
    events = [e["action"] for e in json.loads(cli("history", "--json").stdout)]
    assert "guard.pass" in events and events[-1] == "alias.promote"
    status = json.loads(cli("status", "--json").stdout)
    assert {"index_id": cand, "verdict": "pass"}.items() <= status["verdicts"][-1].items()
    cli("rollback", "--reason", "back to fp32")

    strict = tmp_path / "strict.toml"
    strict.write_text(SMALL_GOLD_TOML + "min_lift = 5.0\n")
    failed = cli("guard", cand, "--gold", RUNBOOKS, "--policy", strict, expect=1)
    assert "FAIL" in failed.stdout
    refused = " ".join(cli("promote", cand, "--policy", strict, expect=1).stderr.split())
    assert "latest report" in refused and "failed: domain, forgetting" in refused  # no --general: a required gate
    assert "no such general benchmark" in cli("guard", cand, "--gold", RUNBOOKS, "--general", tmp_path / "nope.tsv", expect=2).stderr
    assert "gold" in cli("guard", cand, "--gold", tmp_path, expect=2).stderr
