"""Re-embedding: ONNX export and encoder, blue-green LanceDB index builds, search, shadow.

Public API (other stages use only these names)::

    from embedops.reembed import IndexBuild, Searcher, OnnxEncoder, ensure_export, sync_index, ...
"""

from embedops.reembed.build import (
    BuildReport,
    IndexBuild,
    IntegrityError,
    check_index_integrity,
    find_ready_index,
    sync_index,
)
from embedops.reembed.encoder import OnnxEncoder
from embedops.reembed.onnx_export import ensure_export, measure_parity
from embedops.reembed.search import Hit, Searcher, SearchResult

__all__ = ["BuildReport", "Hit", "IndexBuild", "IntegrityError", "OnnxEncoder", "SearchResult", "Searcher",
           "check_index_integrity", "ensure_export", "find_ready_index", "measure_parity", "sync_index"]
