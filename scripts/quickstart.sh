#!/usr/bin/env bash
# The main job as it stands today, end to end on the bundled example corpus, offline:
# corpus -> model version -> ONNX export -> blue-green index -> promote -> search ->
# candidate index (int8) -> shadow comparison -> promote -> rollback -> status.
# Uses ./quickstart-store (recreated each run). Needs ./scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 EMBEDOPS_STORE=./quickstart-store
E=.venv/bin/embedops
rm -rf "$EMBEDOPS_STORE"
ex=examples/runbooks

$E corpus add runbooks $ex
$E model register minilm bundled:all-MiniLM-L6-v2 --notes "all-MiniLM-L6-v2, bundled"
blue=$($E index build minilm@1 --corpus runbooks)
$E promote "$blue" --force --reason "first index (guards arrive with the guards stage)"
$E search "primary db is down, how do I promote the replica" -k 3

# A candidate: the same model served as int8 ONNX (about 2.8x faster on CPU).
green=$($E index build minilm@1 --corpus runbooks --precision int8)
$E shadow "$green" --queries $ex/queries.jsonl --qrels $ex/qrels/test.tsv -k 5
$E promote "$green" --expect "$blue" --force --reason "int8 matches fp32 in shadow"
$E rollback --reason "showing an O(1) rollback"
$E status
