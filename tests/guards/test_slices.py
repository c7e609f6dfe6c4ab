"""The slice gate: a candidate that wins on average but loses a whole kind of query is refused."""

import json

import numpy as np
import pytest

from embedops.guards import run_guards
from embedops.guards.slices import derive_slices, slice_gate
from embedops.reembed import IndexBuild
from guard_helpers import RUNBOOKS, small_gold
from helpers import StoreCli, write_jsonl

JUNK = "Banana bread recipe number {i}: flour, sugar, butter, two ripe bananas, bake for an hour."


def _corpus(path, garbled: set[str]):
    rows = [json.loads(l) for l in (RUNBOOKS / "corpus.jsonl").read_text().splitlines()]
    write_jsonl(path, [r if r["_id"] not in garbled else {"_id": r["_id"], "title": "", "text": JUNK.format(i=i)}
                       for i, r in enumerate(rows)])
    return path


def _gold(root):
    """The runbooks' 10 queries plus each first-half document's title as a second query: slice
    'first half' has 15 queries, 'second half' 5 (named in slices.tsv beside the qrels)."""
    queries = [json.loads(l) for l in (RUNBOOKS / "queries.jsonl").read_text().splitlines()]
    qrels = [l.split("\t") for l in (RUNBOOKS / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    titles = {json.loads(l)["_id"]: json.loads(l)["title"] for l in (RUNBOOKS / "corpus.jsonl").read_text().splitlines()}
    first = {d for q, d, _ in qrels[:5]}
    extra = [({"_id": f"t-{d}", "text": titles[d]}, [f"t-{d}", d, "1"]) for d in sorted(first)]
    extra += [({"_id": f"u-{d}", "text": titles[d].lower() + " runbook"}, [f"u-{d}", d, "1"]) for d in sorted(first)]
    write_jsonl(root / "queries.jsonl", queries + [q for q, _ in extra])
    (root / "qrels").mkdir(parents=True)
    all_qrels = qrels + [r for _, r in extra]
    (root / "qrels" / "test.tsv").write_text("".join("\t".join(r) + "\n" for r in all_qrels))
    (root / "qrels" / "slices.tsv").write_text("query-id\tslice\n" + "".join(
        f"{q}\t{'first half' if d in first else 'second half'}\n" for q, d, _ in all_qrels))
    return root, first, {d for q, d, _ in qrels[5:]}


@pytest.mark.slow
def test_a_candidate_that_wins_on_average_but_loses_a_slice_fails(minilm_store, sts_file, tmp_path):
    reg, _ = minilm_store
    gold, first, second = _gold(tmp_path / "gold")
    # production's corpus lost the first half's documents, the candidate's the second half's: the
    # candidate wins the 15 first-half queries and loses the 5 others (same model, same ids)
    reg.corpora.add("rb-production", _corpus(tmp_path / "p.jsonl", first))
    reg.corpora.add("rb-candidate", _corpus(tmp_path / "c.jsonl", second))
    prod = IndexBuild(reg, "minilm@1", "rb-production").run().index
    cand = IndexBuild(reg, "minilm@1", "rb-candidate").run().index
    reg.promote(prod.index_id, "sliced", reason="test baseline", override=True)
    # 20 queries with changes of -100 and up to +100 points: the mean's interval is wide, so the domain
    # gate's tolerance is 5 points here (its default, 1, would refuse the candidate before the slices)
    policy = small_gold(min_gold_queries=20, tolerance=5.0)
    report = run_guards(reg, cand.index_id, gold=gold, general=[sts_file], policy=policy, alias="sliced",
                        html_dir=tmp_path / "html")
    gates = {g.name: g for g in report.gates}
    assert gates["domain"].status == "pass" and gates["domain"].value > 10  # it wins on average ...
    sliced = gates["slices"]
    assert report.verdict == "fail" and sliced.status == "fail"  # ... and is refused for one slice
    assert "slice 'second half' (5 queries) may regress" in sliced.reason and "Bonferroni over 2 slices" in sliced.reason
    assert sliced.evidence["source"].endswith("slices.tsv") and sliced.evidence["confidence_each"] == pytest.approx(0.975)
    rows = {r["slice"]: r for r in sliced.evidence["slices"]}
    assert rows["first half"]["ci_low"] > 0 > rows["second half"]["ci_high"]
    assert {g.name for g in report.gates if g.status == "fail"} == {"slices"}
    html = (tmp_path / "html" / "report.html").read_text()
    assert "<h2>Slices</h2>" in html and "second half" in html and (tmp_path / "html" / "slices.png").is_file()
    text = " ".join(StoreCli(str(reg.store.root))("guard", cand.index_id, "--gold", gold, "--general", sts_file,
                                                  "--alias", "sliced", "--policy", _policy_file(tmp_path, policy),
                                                  expect=1).stdout.split())
    assert "per slice (points)" in text and "second half" in text and "evidence, slices: 2 of 2 slices judged" in text


def _policy_file(tmp_path, policy):
    path = tmp_path / "policy.toml"
    path.write_text("[guards]\n" + "".join(f"{k} = {v}\n" for k, v in policy.to_dict().items()
                                           if k in ("min_gold_queries", "min_slice_queries", "bootstrap_resamples", "tolerance")))
    return path


def test_slices_too_small_to_judge_are_listed_and_no_judgeable_slice_is_no_pass():
    deltas = {f"q{i}": float(i % 5) for i in range(12)}
    slices = {q: ("big" if i < 8 else "small") for i, q in enumerate(deltas)}
    gate = slice_gate(deltas, {q: q for q in deltas}, slices, "test", small_gold(min_slice_queries=5))
    rows = {r["slice"]: r for r in gate.evidence["slices"]}
    assert gate.status == "pass" and rows["big"]["judged"] and not rows["small"]["judged"]
    assert "1 smaller than 5 not judged" in gate.reason and gate.evidence["confidence_each"] == pytest.approx(0.95)
    none = slice_gate(deltas, {q: q for q in deltas}, slices, "test", small_gold(min_slice_queries=10))
    assert none.status == "skip" and "no slice has 10 gold queries" in none.reason
    assert slice_gate({}, {}, None, "none", small_gold()).status == "skip"


def test_the_correction_widens_each_interval_with_the_number_of_slices():
    rng = np.random.default_rng(0)
    deltas = {f"q{i}": float(v) for i, v in enumerate(rng.normal(0, 10, 120))}
    two = slice_gate(deltas, {q: q for q in deltas}, {q: str(i % 2) for i, q in enumerate(deltas)}, "t", small_gold())
    six = slice_gate(deltas, {q: q for q in deltas}, {q: str(i % 2) if i < 60 else str(2 + i % 4)
                                                     for i, q in enumerate(deltas)}, "t", small_gold())
    assert two.evidence["confidence_each"] == pytest.approx(0.975) and six.evidence["confidence_each"] == pytest.approx(
        1 - 0.05 / 6)
    width = {g.evidence["judged"]: {r["slice"]: r["ci_high"] - r["ci_low"] for r in g.evidence["slices"]} for g in (two, six)}
    assert width[6]["2"] > 0 and width[2]["0"] > 0


def test_derived_slices_follow_the_embeddings():
    rng = np.random.default_rng(1)
    centres = np.eye(3)
    vectors = np.vstack([c + 0.05 * rng.normal(size=(30, 3)) for c in centres])
    qids = [f"q{i}" for i in range(90)]
    slices = derive_slices(vectors, qids, small_gold(min_slice_queries=15, max_slices=3))
    groups = {}
    for q, s in slices.items():
        groups.setdefault(s, set()).add(int(q[1:]) // 30)
    assert len(groups) == 3 and all(len(g) == 1 for g in groups.values())  # one cluster per centre
