"""A writer killed with SIGKILL mid-write leaves a store that opens and reads consistently."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import SAMPLE_DOCS, write_jsonl
from embedops.registry import Registry
from embedops.store import Store

WRITER = textwrap.dedent(
    """
    import sys
    from embedops.registry import Registry, IndexStatus
    from embedops.store import Store
    uri, model, corpus_a, corpus_b = sys.argv[1:5]
    reg = Registry(Store.open(uri))
    i = 0
    while True:
        reg.models.register("tiny", model, notes=f"round {i}")
        reg.corpora.add("ops", corpus_a if i % 2 == 0 else corpus_b, replace=True)
        rec = reg.indexes.create("tiny@1", "ops")
        reg.indexes.update(rec.index_id, status=IndexStatus.READY, doc_count=i)
        current = reg.aliases.get("production")
        reg.aliases._switch("production", rec.index_id, expect=current.value if current else None)
        print("tick", i, flush=True)
        i += 1
    """
)


def check_consistent(uri, ids_a, ids_b):
    reg = Registry(Store.open(uri))
    for m in reg.models.list():
        assert reg.models.verify(m.ref) == [], m.ref
    hist = reg.aliases.history("production")
    assert [h.seq for h in hist] == list(range(1, len(hist) + 1))
    for before, after in zip(hist, hist[1:]):
        assert after.previous == before.value
    index_ids = {i.index_id for i in reg.indexes.list()}
    assert all(h.value in index_ids for h in hist)
    if reg.corpora.exists("ops"):
        ids = set(reg.corpora.documents("ops").column("id").to_pylist())
        assert ids in (ids_a, ids_b)
    assert reg.history()  # the audit log reads
    return reg


@pytest.mark.slow
def test_sigkill_during_registry_writes_leaves_a_consistent_store(tmp_path, tiny_model_dir):
    uri = str(tmp_path / "s")
    a = write_jsonl(tmp_path / "a.jsonl", SAMPLE_DOCS)
    b = write_jsonl(tmp_path / "b.jsonl", SAMPLE_DOCS[:3] + [{"_id": "z", "text": "new"}])
    ids_a, ids_b = {d["_id"] for d in SAMPLE_DOCS}, {"d1", "d2", "d3", "z"}
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for ticks, delay in [(1, 0.0), (1, 0.07), (2, 0.19), (2, 0.31)]:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, str(tiny_model_dir), str(a), str(b)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            seen = 0
            deadline = time.time() + 120
            while seen < ticks and time.time() < deadline:
                line = proc.stdout.readline()
                if not line:
                    pytest.fail(f"writer died on its own: {proc.stderr.read()}")
                seen += line.startswith("tick")
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        check_consistent(uri, ids_a, ids_b)
    # and the store keeps working for the next writer
    reg = check_consistent(uri, ids_a, ids_b)
    mv = reg.models.register("tiny", tiny_model_dir)
    assert reg.models.verify(mv.ref) == []
