"""The serve process's heap is frozen once per set of served indexes, so full collections stay short."""

import gc
import weakref

from embedops.app.server.heap import HeapSettler


class _Node:
    pass


def test_the_heap_is_frozen_when_the_served_indexes_change_and_released_when_the_server_stops():
    settler = HeapSettler()
    one, two = (("production", ("idx-a", None, 0.0)),), (("production", ("idx-b", None, 0.0)),)
    try:
        node = _Node()
        node.me = node  # a cycle, alive when the heap is frozen for the first indexes
        gone = weakref.ref(node)
        assert settler.settle(one)
        assert gc.get_freeze_count() > 1000  # this process's objects: out of every later full collection
        assert not settler.settle(one)  # the same indexes: nothing to do
        del node
        gc.collect()
        assert gone() is not None  # frozen: full collections no longer look at it
        assert settler.settle(two)  # the served indexes changed: unfreeze, collect, freeze again
        assert gone() is None and gc.get_freeze_count() > 1000
    finally:
        settler.release()
    assert gc.get_freeze_count() == 0
