from pathlib import Path

import pytest

from embedops.registry import Registry
from embedops.store import Store

from guard_helpers import RUNBOOKS

# The demo's hand-written pairs: a smoke test of everyday English (see embedops.app.demo_domain).
from embedops.app.demo_domain import GENERAL_STS as STS  # noqa: E402


@pytest.fixture(scope="session")
def sts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sts") / "sts.tsv"
    path.write_text("score\tsentence1\tsentence2\n" + "".join(f"{s}\t{a}\t{b}\n" for s, a, b in STS))
    return path


@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory):
    """A store with the runbooks corpus, the bundled MiniLM as minilm@1 and its index in production."""
    from embedops.reembed import IndexBuild

    reg = Registry(Store.open(str(tmp_path_factory.mktemp("guards") / "store")))
    reg.corpora.add("runbooks", RUNBOOKS)
    reg.models.register("minilm", "bundled:all-MiniLM-L6-v2")
    base = IndexBuild(reg, "minilm@1", "runbooks").run().index
    reg.promote(base.index_id, reason="baseline", override=True)
    return reg, base


