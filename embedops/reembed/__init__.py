"""Re-embedding: blue-green LanceDB index builds of a whole corpus, catch-up sync, the Ray engine.

Encoders live in :mod:`embedops.encoding`, what an index is and how it is read in
:mod:`embedops.index`, and searching behind aliases in :mod:`embedops.registry`.

    from embedops.reembed import IndexBuild, sync_index
"""

from embedops.reembed.build import BuildReport, IndexBuild, IndexWriter, MainPassEngine, sync_index

__all__ = ["BuildReport", "IndexBuild", "IndexWriter", "MainPassEngine", "sync_index"]
