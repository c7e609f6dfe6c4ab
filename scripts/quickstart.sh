#!/usr/bin/env bash
# The building blocks one command at a time, on embedops' own 20-runbook example, offline:
# corpus -> model version -> blue-green index -> promote -> search -> candidate index (int8) ->
# shadow comparison -> guards -> guarded promote -> rollback -> status.
# (The whole lifecycle including fine-tuning is 'embedops demo'.)
# Uses ./quickstart-store (recreated each run). Needs ./scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 EMBEDOPS_STORE=./quickstart-store
E=.venv/bin/embedops
rm -rf "$EMBEDOPS_STORE"
ex=$(.venv/bin/python -m embedops.app.example_runbooks ./quickstart-data/runbooks)  # 20 example runbooks, BEIR layout
# A general-ability set for the forgetting gate (required by the default policy): the demo's 24
# hand-written sentence pairs, a smoke test; use STS-B (../shared/data/general-stsb) for a real check.
sts=./quickstart-data/general-sts.tsv
.venv/bin/python -c "import sys, pathlib; from embedops.app.demo_domain import write_general_sts; write_general_sts(pathlib.Path(sys.argv[1]))" "$sts"

# The example has 10 questions; the default policy wants 50 judgeable gold queries (and 20 per
# slice) before it judges anything. This policy lowers those minimums for the example, and says so.
policy=./quickstart-data/policy.toml
printf '[guards]\nmin_gold_queries = 10\nmin_slice_queries = 5\n' > "$policy"

$E init                                   # the store; other commands refuse a --store that names none
$E corpus add runbooks $ex
$E model register minilm bundled:all-MiniLM-L6-v2 --notes "all-MiniLM-L6-v2, bundled"
blue=$($E index build minilm@1 --corpus runbooks)
$E promote "$blue" --force --reason "first index: nothing to compare against yet"   # an audited override
$E search "primary db is down, how do I promote the replica" -k 3

# A candidate: the same model served as int8 ONNX (about 2.8x faster on CPU).
green=$($E index build minilm@1 --corpus runbooks --precision int8)
$E shadow "$green" --queries $ex/queries.jsonl --qrels $ex/qrels/test.tsv -k 5
$E guard "$green" --gold $ex --general "$sts" --policy "$policy" --html ./quickstart-guard-report
$E promote "$green" --expect "$blue" --policy "$policy"
$E rollback --reason "showing an O(1) rollback"
$E status
