"""The index layer: what an index table is (schema, name, records), how it is read and searched,
and how its integrity is checked. Below the stages; knows nothing of the registry or of models.

    from embedops.index import IndexReader, IndexRecord, IndexStatus, check_index_integrity
"""

from embedops.index.ann import SEARCH, SearchSettings, vector_query
from embedops.index.integrity import IntegrityError, check_index_integrity, check_integrity, diff_ids
from embedops.index.progressive import ProgressiveReader
from embedops.index.reader import Hit, IndexReader
from embedops.index.records import Bridge, IndexParams, IndexRecord, IndexStatus, newest_ready
from embedops.index.settings import IndexSettings
from embedops.index.table import VECTOR, index_schema, table_name, vector_rows

__all__ = ["Bridge", "Hit", "IndexParams", "IndexReader", "IndexRecord", "IndexSettings", "IndexStatus", "IntegrityError", "ProgressiveReader", "SEARCH",
           "SearchSettings", "VECTOR", "check_index_integrity", "check_integrity", "diff_ids", "index_schema",
           "newest_ready", "table_name", "vector_query", "vector_rows"]
