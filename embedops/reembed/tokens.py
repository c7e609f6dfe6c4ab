"""Token ids kept in the store, so a corpus is tokenised once per tokenizer, not once per build.

Token ids depend on the tokenizer, not on the weights: every fine-tuned version of a base model
shares its tokenizer, so the re-embed after a fine-tune would tokenise the very texts the last build
tokenised. :class:`TokenStore` keeps, per tokenizer (:attr:`OnnxEncoder.tokenizer_digest
<embedops.encoding.OnnxEncoder.tokenizer_digest>`), one LanceDB table of ``content_hash -> ids``;
a document's content hash is the corpus's own (sha256 of its title and text), so every corpus
version, and every corpus, that holds the same text reuses its ids. A build reads the ids of each
chunk's hashes and tokenises only the texts not seen before, in the encoder's background thread
(:meth:`OnnxEncoder.encode_stream <embedops.encoding.OnnxEncoder.encode_stream>`), writing them
for the next build.

    >>> tokens = TokenStore(store.db, encoder)                                # doctest: +SKIP
    >>> for vectors in encoder.encode_stream(chunks, tokenize=tokens.ids):    # doctest: +SKIP
    ...     ...   # chunks: TextChunk(hashes, texts)
    >>> tokens.reused, tokens.tokenized                                       # doctest: +SKIP
    (5183, 0)

Ids are stored as int32 lists (vocabularies are far below 2**31). Two builds writing the same text
at once store it twice, which is harmless: both rows hold the same ids.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from embedops.records import sql_in
from embedops.store import with_schema_version

TABLE_PREFIX = "tokens__"
SCHEMA = pa.schema([pa.field("content_hash", pa.string(), nullable=False),
                    pa.field("ids", pa.list_(pa.int32()), nullable=False)])
_LOOKUP_BATCH = 1000  # hashes per IN filter


class TextChunk(NamedTuple):
    """What a build hands the encoder for one chunk: the documents' content hashes and texts."""

    hashes: list[str]
    texts: list[str]


def table_name(tokenizer_digest: str) -> str:
    return f"{TABLE_PREFIX}{tokenizer_digest[:24]}"


class TokenStore:
    """The stored token ids of one encoder's tokenizer in a store's LanceDB connection ``db``
    (``Store.db``; a Ray actor connects with the storage options the driver hands it); :meth:`ids`
    is the ``tokenize`` step of :meth:`~embedops.encoding.OnnxEncoder.encode_stream`. Counts what
    it reused and what it tokenised (:attr:`reused`, :attr:`tokenized`). Its table is created,
    empty, on first use (concurrent creators are fine: ``exist_ok``)."""

    def __init__(self, db, encoder):
        self.encoder = encoder
        self.name = table_name(encoder.tokenizer_digest)
        self.table = db.create_table(self.name, schema=with_schema_version(SCHEMA), exist_ok=True)
        self.reused = 0
        self.tokenized = 0
        self._lock = threading.Lock()

    def lookup(self, hashes: list[str]) -> dict[str, list[int]]:
        """The stored ids of those ``hashes`` that have them."""
        tbl = self.table
        tbl.checkout_latest()  # what other builds stored since this one opened the table
        found: dict[str, list[int]] = {}
        wanted = sorted(set(hashes))
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            rows = tbl.search().where(sql_in("content_hash", wanted[start : start + _LOOKUP_BATCH])) \
                .select(["content_hash", "ids"]).limit(None).to_arrow()
            found.update(zip(rows.column("content_hash").to_pylist(), rows.column("ids").to_pylist()))
        return found

    def ids(self, chunk: TextChunk) -> list[list[int]]:
        """Token ids for ``chunk``'s texts, in order: stored ones reused, the rest tokenised and stored."""
        found = self.lookup(chunk.hashes)
        missing = [i for i, h in enumerate(chunk.hashes) if h not in found]
        if missing:
            new = self.encoder.tokenize([chunk.texts[i] for i in missing])
            rows = pa.table({"content_hash": [chunk.hashes[i] for i in missing],
                             "ids": pa.array([np.asarray(x, dtype=np.int32) for x in new], pa.list_(pa.int32()))},
                            schema=SCHEMA)
            self.table.add(rows)
            found.update((chunk.hashes[i], ids) for i, ids in zip(missing, new))
        with self._lock:
            self.reused += len(chunk.hashes) - len(missing)
            self.tokenized += len(missing)
        return [found[h] for h in chunk.hashes]

    def counts(self) -> dict[str, int]:
        return {"token_ids_reused": self.reused, "texts_tokenized": self.tokenized}
