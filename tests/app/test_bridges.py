"""Bridges: a new model version's queries mapped into an old index's space through a stored adapter."""

import json

import numpy as np
import pytest

from embedops.app.bridges import fit_bridge_adapter, open_bridge
from embedops.errors import ChecksumMismatchError, NotFoundError, UsageError
from helpers import StoreCli, bridged_notes

@pytest.fixture
def old_index(reg, tmp_path, tiny_model_b):
    return bridged_notes(reg, tmp_path, tiny_model_b)


def test_an_adapter_is_fitted_on_stored_vectors_kept_with_its_lineage_and_bridges_searches(reg, old_index):
    rec = fit_bridge_adapter(reg, "tiny@2", old_index.index_id, kind="procrustes", sample=80)
    assert rec.adapter_id.startswith("adapter-") and (rec.model_ref, rec.index_id) == ("tiny@2", old_index.index_id)
    assert rec.meta["index_model_ref"] == "tiny@1" and rec.meta["sample"]["documents"] == 80
    assert 0.0 < rec.meta["fit"]["holdout_cosine"] <= 1.0 and rec.meta["fit"]["holdout_rows"] == 16
    assert [a.adapter_id for a in reg.adapters.list("tiny@2")] == [rec.adapter_id]
    bridge = open_bridge(reg, rec.adapter_id)
    hits = bridge.search(["kafka consumer lag"], 5)[0]
    assert bridge.index_id == old_index.index_id and len(hits) == 5 and all(h.id.startswith("d") for h in hits)
    # the query went through the new model, then the adapter
    raw = bridge.encoder.encoder.encode(["kafka consumer lag"])
    assert np.allclose(bridge.encode(["kafka consumer lag"]), bridge.encoder.adapter.apply(raw), atol=1e-6)


def test_a_tampered_adapter_is_refused_like_model_files(reg, old_index):
    rec = fit_bridge_adapter(reg, "tiny@2", old_index.index_id, kind="affine", sample=80)
    path = reg.artifacts.verified_path(rec.artifact) / "adapter.npz"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        reg.adapters.load(rec.adapter_id)


def test_adapters_that_make_no_sense_are_refused_by_name(reg, old_index):
    with pytest.raises(UsageError, match="built by tiny@1 itself: its queries need no adapter"):
        fit_bridge_adapter(reg, "tiny@1", old_index.index_id)
    with pytest.raises(UsageError, match="30 documents are too few to fit an adapter"):
        fit_bridge_adapter(reg, "tiny@2", old_index.index_id, sample=30)
    with pytest.raises(NotFoundError, match="no adapter adapter-000000000000"):
        reg.adapters.get("adapter-000000000000")
    with pytest.raises(UsageError, match="is not an adapter id"):
        reg.adapters.get("scifact--minilm")
    with pytest.raises(UsageError, match="is not an adapter id"):
        reg.adapters.get("adapter-00000000000%")


def test_adapter_fit_and_list_through_the_cli(reg, old_index, tiny_model_b):
    cli = StoreCli(str(reg.store.uri), create=False)
    done = cli("adapter", "fit", "tiny@2", "--index", old_index.index_id, "--sample", "80")
    adapter_id = done.stdout.strip()
    assert adapter_id.startswith("adapter-") and "top-1 agreement" in done.stderr
    assert "not a version of" not in done.stderr  # tiny@2 is a version of tiny@1: no note
    reg.models.register("other", tiny_model_b)  # another lineage: a family switch, which bridges poorly
    other = cli("adapter", "fit", "other@1", "--index", old_index.index_id, "--sample", "80")
    assert "note: other@1 is not a version of tiny@1's lineage" in " ".join(other.stderr.split())
    listed = json.loads(cli("adapter", "list", "--model", "tiny@2", "--json").stdout)
    assert (adapter_id, old_index.index_id, "procrustes") in [(a["adapter_id"], a["index_id"], a["kind"]) for a in listed]
    bad = cli("adapter", "fit", "tiny@2", "--index", old_index.index_id, "--kind", "pca", expect=2)
    assert "unknown adapter kind 'pca'; choose one of procrustes, affine, mlp" in bad.stderr


def test_a_bridge_promoted_through_the_cli_shows_in_status_search_and_the_dashboard(reg, old_index):
    from embedops.app.dashboard.views import overview

    cli = StoreCli(str(reg.store.uri), create=False)
    adapter_id = cli("adapter", "fit", "tiny@2", "--index", old_index.index_id, "--sample", "80").stdout.strip()
    refused = cli("promote", adapter_id, expect=1)
    assert f"cannot promote {adapter_id} to production: it has no guard report" in refused.stderr
    cli("promote", adapter_id, "--force", "--reason", "serve the new model before the re-embed")
    status = cli("status").stdout  # the alias's row names the bridge, its adapter and the old index
    assert adapter_id in status and "= procrustes adapter" in status and old_index.index_id in status
    found = json.loads(cli("search", "kafka consumer lag", "--json").stdout)
    assert (found["index_id"], found["model_ref"], found["bridge"]["index_id"]) == (adapter_id, "tiny@2",
                                                                                    old_index.index_id)
    card = overview(reg).cards[0]
    assert card.index.model_ref == "tiny@2" and card.index.bridge.adapter_id == adapter_id
