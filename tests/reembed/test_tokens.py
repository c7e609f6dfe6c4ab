"""Token ids are kept per tokenizer: the build of a fine-tuned version (same tokenizer, other
weights) on texts built before tokenises nothing, and embeds exactly what tokenising would."""

import numpy as np
import pytest

from helpers import write_jsonl
from embedops.corpus import doc_text
from embedops.encoding import OnnxEncoder
from embedops.reembed.build import IndexBuild, sync_index
from embedops.reembed.tokens import TextChunk, TokenStore, table_name
from embedops.registry import open_encoder
from reembed_helpers import make_docs


@pytest.fixture
def tokenised(monkeypatch):
    """How many texts every encoder of this process tokenises from here on."""
    seen = {"texts": 0}
    original = OnnxEncoder._tokenize

    def counting(self, texts):
        seen["texts"] += len(texts)
        return original(self, texts)

    monkeypatch.setattr(OnnxEncoder, "_tokenize", counting)
    return seen


def vectors(reg, index):
    rows = reg.store.open_table(index.table_name).to_arrow().to_pylist()
    return {r["id"]: np.array(r["vector"]) for r in rows}


def test_a_fine_tuned_versions_build_on_the_same_corpus_tokenises_nothing(reg, docs_file, tiny_model_b, tokenised):
    reg.corpora.add("ops", docs_file)
    reg.models.register("tuned", tiny_model_b)  # the same tokenizer, other weights
    for model in ("tiny@1", "tuned@1"):  # each export's parity check tokenises its 12 sample texts once
        open_encoder(reg, model)
    tokenised["texts"] = 0
    first = IndexBuild(reg, "tiny@1", "ops", chunk_size=16).run().index
    assert (first.metrics["texts_tokenized"], first.metrics["token_ids_reused"]) == (40, 0)
    assert tokenised["texts"] == 40
    second = IndexBuild(reg, "tuned@1", "ops", chunk_size=16).run().index
    assert tokenised["texts"] == 40, "the second build called the tokenizer"
    assert (second.metrics["texts_tokenized"], second.metrics["token_ids_reused"]) == (0, 40)
    # the reused ids give exactly the vectors that tokenising the texts gives
    docs = {d["_id"]: doc_text(d["title"], d["text"]) for d in make_docs(40)}
    ids = sorted(docs)
    expected = open_encoder(reg, "tuned@1").encode([docs[i] for i in ids])
    got = vectors(reg, second)
    assert np.allclose(np.vstack([got[i] for i in ids]), expected, atol=1e-6)


def test_only_changed_documents_are_tokenised_again(reg, docs_file, tmp_path, tokenised):
    reg.corpora.add("ops", docs_file)
    index = IndexBuild(reg, "tiny@1", "ops").run().index
    docs = make_docs(40)
    docs[3]["text"] = "new text for doc three"
    reg.corpora.add("ops", write_jsonl(tmp_path / "v2.jsonl", docs), replace=True)
    tokenised["texts"] = 0
    assert sync_index(reg, index.index_id).embedded == 1
    assert tokenised["texts"] == 1
    rebuilt = IndexBuild(reg, "tiny@1", "ops").run().index  # the corpus's new version: every text seen before
    assert (rebuilt.metrics["texts_tokenized"], rebuilt.metrics["token_ids_reused"]) == (0, 40)


def test_token_ids_are_kept_apart_per_tokenizer_settings(reg, tiny_model_dir, tokenised):
    encoder = open_encoder(reg, "tiny@1")
    short = OnnxEncoder(encoder.path, max_length=8)  # other truncation: other ids, another table
    assert short.tokenizer_digest != encoder.tokenizer_digest
    chunk = TextChunk(["h1", "h2"], ["kafka lag on the orders topic " * 4, "tls"])
    long_ids = TokenStore(reg.store.db, encoder).ids(chunk)
    short_store = TokenStore(reg.store.db, short)
    short_ids = short_store.ids(chunk)
    assert len(long_ids[0]) > len(short_ids[0]) == 8
    assert (short_store.reused, short_store.tokenized) == (0, 2)
    assert table_name(encoder.tokenizer_digest) != table_name(short.tokenizer_digest)
    again = TokenStore(reg.store.db, short)
    assert again.ids(chunk) == short_ids and (again.reused, again.tokenized) == (2, 0)
