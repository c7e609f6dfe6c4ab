"""embedops: take an off-the-shelf text-embedding model to a domain-specialised one and ship it safely.

Subpackages: ``embedops.registry`` (model versions, indexes, aliases), ``embedops.reembed``
(ONNX encoders and blue-green LanceDB indexes), ``embedops.trainer`` and ``embedops.guards``.
Shared core modules (store, corpus loading, audit log, CLI) live directly in ``embedops``.
"""

__version__ = "0.1.0"
