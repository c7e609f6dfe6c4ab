"""An index table: its LanceDB name, its Arrow schema and how its rows are built.

One row per corpus document: ``id``, ``content_hash`` (of the text that was embedded, so a catch-up
can tell changed documents) and ``vector`` (fixed-size float32, L2-normalised; or, for the other
stored kinds, int8 codes or sign bits, with a ``rescore`` column: :mod:`embedops.index.codecs`).

>>> table_name("scifact--minilm-v2--1a2b3c4d")
'index__scifact--minilm-v2--1a2b3c4d'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from embedops.errors import UnsafePathError
from embedops.index.codecs import VECTOR, VectorCodec
VECTOR_BATCH_ROWS = 8192  # rows per batch when scanning the vector column: memory stays one batch (12 MB at 384-d)
TABLE_PREFIX = "index__"
_INDEX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")


def table_name(index_id: str) -> str:
    """The LanceDB table that holds index ``index_id``."""
    return TABLE_PREFIX + index_id


def check_table_name(index_id: str, name: str) -> None:
    """Refuse a record whose table is not its own ``index__<id>`` (an altered row could otherwise make
    a read or a drop reach another table)."""
    if name != table_name(index_id) or not _INDEX_ID.match(index_id):
        raise UnsafePathError(f"index record {index_id!r} names table {name!r}, not its own "
                              "index__<id> table; refusing to read or drop it (the row was altered)")


def _codec(codec: VectorCodec | int) -> VectorCodec:
    return VectorCodec("float32", codec) if isinstance(codec, int) else codec


def index_schema(codec: VectorCodec | int) -> pa.Schema:
    """The table schema of an index stored by ``codec`` (an int: float32 of that dimension)."""
    return pa.schema([pa.field("id", pa.string(), nullable=False),
                      pa.field("content_hash", pa.string(), nullable=False), *_codec(codec).fields()])


def vector_rows(ids: Sequence[str], hashes: Sequence[str], vectors: np.ndarray,
                codec: VectorCodec | None = None) -> pa.Table:
    """Index rows for ``ids`` with their content hashes and ``vectors`` (n, model dim), stored by
    ``codec`` (default: float32 as they are)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    codec = codec or VectorCodec("float32", int(vectors.shape[1]) if vectors.ndim == 2 else 0)
    return pa.Table.from_arrays([pa.array(list(ids), pa.string()), pa.array(list(hashes), pa.string()),
                                 *codec.columns(vectors)], schema=index_schema(codec))


def vector_batches(tbl, batch_rows: int = VECTOR_BATCH_ROWS, column: str = VECTOR) -> Iterator[pa.RecordBatch]:
    """The vector column (or ``column``), batch by batch."""
    yield from tbl.search().select([column]).limit(None).to_batches(batch_rows)


def id_hashes(tbl, batch_rows: int = 65536) -> dict[str, str]:
    """``{id: content_hash}`` of a table with those columns (an index or a corpus)."""
    out: dict[str, str] = {}
    for b in tbl.search().select(["id", "content_hash"]).limit(None).to_batches(batch_rows):
        out.update(zip(b.column("id").to_pylist(), b.column("content_hash").to_pylist()))
    return out
