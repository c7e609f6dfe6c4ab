"""Live canary and shadow comparisons summed up per gold slice, when the judged index's guard
report kept its slices: each live query goes to the slice whose centre is nearest."""

import datetime as dt

from helpers import PASSING_GATES, StoreCli, binding_for, put_report
from embedops.app.live import live_summary
from embedops.guards.slices import slice_centroids
from embedops.registry import open_encoder
from embedops.registry.live import LiveComparison


def _comparisons(s, kind, primary, other, asked):
    now = dt.datetime.now(dt.timezone.utc)
    return [LiveComparison((now - dt.timedelta(seconds=i)).isoformat(timespec="milliseconds"), "test:1", kind,
                           "production", primary, other, q, 5, overlap, 0.5, 10.0, 12.0, ("d1",), ("d2",))
            for i, (q, overlap) in enumerate(asked)]


def test_canary_agreement_is_shown_per_gold_slice_of_its_guard_report(live_store):
    s = live_store
    texts = ["kafka lag on the broker", "dns certificate expiry"]
    vectors = open_encoder(s.reg, "tiny@1").encode(texts)  # production's model, as the slice gate uses
    centroids = slice_centroids(vectors, ["qa", "qb"], {"qa": "streaming", "qb": "edge"})
    slices = {"name": "slices", "status": "pass", "reason": "ok",
              "evidence": {"slices": [], "centroids": centroids, "centroid_model": "tiny@1"}}
    put_report(s.reg, binding_for(s.reg, s.d), gates=[g for g in PASSING_GATES if g["name"] != "slices"] + [slices])
    asked = [(texts[0], 1.0)] * 3 + [(texts[1], 0.2)] * 2
    s.reg.live.append(_comparisons(s, "canary", s.d.index_id, s.a.index_id, asked)
                      + _comparisons(s, "previous", s.b.index_id, s.a.index_id, asked))
    summary = live_summary(s.reg, kind="canary")
    [pair] = summary.pairs
    assert [(a.slice, a.queries, round(a.overlap, 2)) for a in pair.slices] == [("edge", 2, 0.2), ("streaming", 3, 1.0)]
    assert abs(pair.overlap - (3 * 1.0 + 2 * 0.2) / 5) < 1e-6 and pair.slice_report  # stored as float32
    # a pair whose judged index kept no slices is summed up as before, without slices
    [previous] = live_summary(s.reg, kind="previous").pairs
    assert previous.slices == () and previous.slice_report is None
    text = " ".join(StoreCli(s.uri)("shadow", "live", "--kind", "canary").stdout.replace("│", " ").split())
    assert "per gold slice" in text and "edge 2 0.200" in text and "streaming 3 1.000" in text
    assert live_summary(s.reg, kind="canary", by_slice=False).pairs[0].slices == ()
