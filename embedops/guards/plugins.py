"""The registered gates: ``run_guards`` runs each, in ascending ``order``. The built-in gates
register themselves from their modules (imported by :mod:`embedops.guards`); a plug-in gate is
one module that calls :func:`register_gate` (see :class:`embedops.guards.gate.Gate`).

>>> [g.name for g in registered_gates()][:2]
['domain', 'bridge_lift']
"""

from __future__ import annotations

from embedops.errors import UsageError
from embedops.guards.gate import Gate

_GATES: dict[str, Gate] = {}


def register_gate(gate: Gate) -> Gate:
    """Add ``gate`` to every guard run from now on; a second gate of the same name is refused."""
    if gate.name in _GATES and _GATES[gate.name] is not gate:
        raise UsageError(f"a gate named {gate.name!r} is registered already")
    _GATES[gate.name] = gate
    return gate


def unregister_gate(name: str) -> None:
    """Remove the gate ``name`` (what a test that registered one does afterwards)."""
    _GATES.pop(name, None)


def registered_gates() -> tuple[Gate, ...]:
    """Every registered gate, in the order they run."""
    return tuple(sorted(_GATES.values(), key=lambda g: (g.order, g.name)))
