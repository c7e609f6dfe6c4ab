"""An index table: its LanceDB name, its Arrow schema and how its rows are built.

One row per corpus document: ``id``, ``content_hash`` (of the text that was embedded, so a catch-up
can tell changed documents) and ``vector`` (fixed-size float32, L2-normalised).

>>> table_name("scifact--minilm-v2--1a2b3c4d")
'index__scifact--minilm-v2--1a2b3c4d'
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from embedops.errors import UnsafePathError

VECTOR = "vector"
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


def index_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False),
    ])


def vector_rows(ids: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> pa.Table:
    """Index rows for ``ids`` with their content hashes and ``vectors`` (n, dim)."""
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.Table.from_arrays(
        [pa.array(list(ids), pa.string()), pa.array(list(hashes), pa.string()),
         pa.FixedSizeListArray.from_arrays(flat, dim)],
        schema=index_schema(dim),
    )


def vector_batches(tbl, batch_rows: int = VECTOR_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The vector column, batch by batch."""
    yield from tbl.search().select([VECTOR]).limit(None).to_batches(batch_rows)


def id_hashes(tbl, batch_rows: int = 65536) -> dict[str, str]:
    """``{id: content_hash}`` of a table with those columns (an index or a corpus)."""
    out: dict[str, str] = {}
    for b in tbl.search().select(["id", "content_hash"]).limit(None).to_batches(batch_rows):
        out.update(zip(b.column("id").to_pylist(), b.column("content_hash").to_pylist()))
    return out
