"""Serving targets: what an alias can point at. An index id names an index; an adapter id
(``adapter-`` and 12 hex digits, as ``embedops adapter fit`` prints) names a *bridge*: the adapter's
new model answering from the old index it was fitted on, its queries mapped into that index's space
(issue #35).

:func:`serving_target` gives either as an :class:`~embedops.index.IndexRecord`, so the guards, the
promotion rule, canaries, search and serving treat a bridge as they treat an index. A bridge's
record is a view of its old index: the old table, corpus, version, status and vectors, with the
bridge's id, the new model's ref and :class:`~embedops.index.Bridge` set. Its queries are embedded
at fp32 (the precision the adapter was fitted at), whatever precision built the old index.

>>> serving_target(reg, "adapter-1a2b3c4d5e6f").bridge.index_id       # doctest: +SKIP
'scifact--minilm-v1--707bb951'
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from embedops.index import Bridge, IndexRecord
from embedops.registry.adapters import ID_PREFIX

if TYPE_CHECKING:
    from embedops.registry import Registry

BRIDGE_QUERY_PRECISION = "fp32"


def is_bridge_id(target_id: str | None) -> bool:
    return bool(target_id) and target_id.startswith(ID_PREFIX)


def serving_target(registry: Registry, target_id: str) -> IndexRecord:
    """The record of index ``target_id``, or the view of a bridge when it is an adapter id."""
    if not is_bridge_id(target_id):
        return registry.indexes.get(target_id)
    adapter = registry.adapters.get(target_id)
    old = registry.indexes.get(adapter.index_id)
    bridge = Bridge(adapter.adapter_id, old.index_id, old.model_ref, adapter.kind)
    return dataclasses.replace(old, index_id=adapter.adapter_id, model_ref=adapter.model_ref,
                               params=old.params | {"precision": BRIDGE_QUERY_PRECISION}, bridge=bridge)
