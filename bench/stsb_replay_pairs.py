"""General pairs for `train --general` from STS Benchmark's *train* split: each pair scored 4 or more
(the same meaning, or nearly) as a (query, positive) pair, one direction (with both, a row's anchor
would be another row's positive, an in-batch negative identical to the anchor). A stand-in for the
general pairs a user would bring; bench/quality.py's general checks are STS-B *test* and the MS MARCO
slice, so replay of STS-B train may flatter the first and says nothing of the second.

    python bench/stsb_replay_pairs.py /tmp/stsb-replay.jsonl
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MIN_SCORE = 4.0


def main(out: str) -> None:
    from embedops.beir import read_sts

    pairs = []
    s1s, s2s, scores = read_sts(DATA / "general-stsb" / "sts-train.tsv")
    for score, s1, s2 in zip(scores, s1s, s2s):
        s1, s2 = s1.strip(), s2.strip()
        if score >= MIN_SCORE and s1 and s2 and s1 != s2:
            pairs.append({"query": s1, "positive": s2, "source": "stsb-train"})
    Path(out).write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    print(f"{len(pairs)} pairs from {len(scores)} STS-B train lines (score >= {MIN_SCORE:g}) -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
