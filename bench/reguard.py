"""Guard again, under the default policy of today's code, the SciFact indexes of models a quality run
trained and registered (bench/quality.py --store DIR): what `embedops guard` says of the same models
after a change of the guards, without training them again.

Each model's ready fp32 SciFact index is guarded against what ``production`` serves (the base
model's index, as in the run), on the SciFact test qrels with STS-B test as the general benchmark,
exactly as bench/quality.py's own guard step does (it is that function). No test score is taken
besides what the guard computes.

Example::

    EMBEDOPS_SHARED_DATA=../shared/data HF_HUB_OFFLINE=1 python bench/reguard.py --store STORE \\
      --model minilm-defaults-extractive-best-alpha-amd-epyc-s1@1 --model ...-s2@1 \\
      --out bench/quality-results/DATE-extractive-reguard-fine-tunes-must-lift.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from conftest import machine
    from quality import _guard

    from embedops.guards import Policy
    from embedops.registry import Registry
    from embedops.store import Store

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="the store a quality run trained into")
    ap.add_argument("--model", action="append", required=True, help="a registered model (NAME@N); repeat")
    ap.add_argument("--out", type=Path, required=True, help="the raw result file to write")
    args = ap.parse_args()
    reg = Registry(Store.open(args.store))
    out = {"bench": "reguard", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
           "policy": Policy().to_dict(), "production": reg.aliases.current("production"), "guards": {}}
    for ref in args.model:
        guard = _guard(args.store, reg, ref)
        stored = reg.reports.for_index(guard["index"])[-1].gate("domain")["evidence"]  # the report just made
        guard["domain_evidence"] = {k: stored.get(k) for k in ("rule", "mean_lift", "ci_low", "ci_high", "queries")}
        out["guards"][ref] = guard
        domain = guard["gates"]["domain"]
        print(f"{ref}: {guard['verdict']} (domain {domain['status']}: {domain['reason']})", flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"raw: {args.out}")


if __name__ == "__main__":
    main()
