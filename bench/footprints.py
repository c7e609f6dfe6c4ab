"""Index footprints on a gold set (issue #36): `embedops index plan` for each index named, written
with the machine and command to one raw result file.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/footprints.py --store STORE --gold ../shared/data/scifact \\
        --index BASE_INDEX_ID --index FINE_TUNED_INDEX_ID [--dims 256,128] [--tag scifact]

Each index's stored float32 vectors are coded as an index of each kind stores them (``embedops.index.codecs``)
and searched exactly; every footprint is compared with float32 on the gold set's queries with the
domain gate's paired interval (:func:`embedops.app.footprint_plan.plan_footprints`, defaults of the
policy: 95%, 10,000 resamples). Writes ``bench/quality-results/DATE-footprints-TAG.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from conftest import machine  # noqa: E402
from embedops.app.footprint_plan import plan_footprints  # noqa: E402
from embedops.registry import Registry  # noqa: E402
from embedops.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--gold", required=True, type=Path)
    ap.add_argument("--index", action="append", required=True)
    ap.add_argument("--dims", default="256,128")
    ap.add_argument("--max-loss", type=float, default=1.0)
    ap.add_argument("--tag", default="scifact")
    args = ap.parse_args()
    reg = Registry(Store.open(args.store))
    dims = [int(d) for d in args.dims.split(",") if d]
    result = {"bench": "footprints", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "command": " ".join(sys.argv), "plans": []}
    for index_id in args.index:
        start = time.perf_counter()
        plan = plan_footprints(reg, index_id, args.gold, dims=dims, max_loss=args.max_loss)
        result["plans"].append(plan.to_dict() | {"seconds": round(time.perf_counter() - start, 1)})
        print(f"{index_id} ({plan.model_ref}): chosen {plan.chosen}")
        for r in plan.rows:
            print(f"  {r.name:15s} {r.searched_bytes:6g} B {r.ndcg:6.2f} {-r.mean_loss:+6.2f} "
                  f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}] {'within' if r.within else ''}")
    out = ROOT / "bench" / "quality-results" / f"{time.strftime('%Y-%m-%d')}-footprints-{args.tag}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
