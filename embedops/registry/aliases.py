"""Aliases (``production``, ``shadow``, any name): named pointers to an index.

Every switch is a compare-and-swap on the alias's log in the store's refs (see embedops.refs): the
writer names the value it expects to replace, and of two writers racing on one alias exactly one
wins; the other gets :class:`AliasConflictError`. Each record keeps the value it replaced, so a
rollback is one more O(1) switch back to ``previous``, whatever the corpus size.

Only :class:`embedops.registry.Registry` writes aliases: its ``promote`` enforces the promotion
rule (:mod:`embedops.registry.promotion`) and its ``rollback`` is always allowed. The write methods
here are private to the registry package; everything else reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedops.errors import AliasConflictError, ConflictError, NotFoundError, UsageError
from embedops.records import actor, check_name
from embedops.store import Store, utcnow

_PREFIX = "aliases"


class _Unset:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class AliasState:
    """One record of an alias: where it points (``value``) since ``ts``, and what it replaced."""

    name: str
    seq: int
    value: str | None
    previous: str | None
    actor: str
    ts: str
    action: str
    reason: str | None = None
    report_id: str | None = None  # the guard report that authorised a promotion
    override: bool = False  # a promotion without an authorising report (explicit, with a reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "seq": self.seq, "value": self.value, "previous": self.previous,
            "actor": self.actor, "ts": self.ts, "action": self.action, "reason": self.reason,
            "report_id": self.report_id, "override": self.override,
        }


class AliasRegistry:
    """Aliases of a store."""

    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def _key(name: str) -> str:
        return f"{_PREFIX}/{check_name('alias', name)}"

    def _state(self, name: str, rec) -> AliasState:
        p = rec.payload
        return AliasState(
            name=name, seq=rec.seq, value=p.get("value"), previous=p.get("previous"), actor=p["actor"],
            ts=p["ts"], action=p.get("action", "set"), reason=p.get("reason"), report_id=p.get("report_id"),
            override=bool(p.get("override", False)),
        )

    def get(self, name: str) -> AliasState | None:
        rec = self.store.refs.head(self._key(name))
        return self._state(name, rec) if rec else None

    def current(self, name: str) -> str:
        """The index id ``name`` points at; NotFoundError if unset."""
        state = self.get(name)
        if state is None or state.value is None:
            raise NotFoundError(f"alias {name!r} does not point at any index yet; promote an index first")
        return state.value

    def history(self, name: str) -> list[AliasState]:
        return [self._state(name, r) for r in self.store.refs.records(self._key(name))]

    def list(self) -> list[AliasState]:
        out = []
        for key in self.store.refs.keys(_PREFIX):
            state = self.get(key.split("/", 1)[1])
            if state is not None:
                out.append(state)
        return out

    def _switch(self, name: str, value: str | None, *, expect: Any = UNSET, reason: str | None = None,
                action: str = "set", report_id: str | None = None, override: bool = False) -> AliasState:
        """Point ``name`` at ``value`` if it still points at ``expect`` (default: what we just read).

        The compare-and-swap primitive: no checks of what ``value`` is. Call it only from
        :class:`embedops.registry.Registry`, which applies the promotion rule first."""
        key = self._key(name)
        head = self.store.refs.head(key)
        current = head.payload.get("value") if head else None
        if expect is not UNSET and expect != current:
            raise AliasConflictError(
                f"alias {name!r} points at {current!r}, not the expected {expect!r}; someone else "
                "switched it. Re-read it ('embedops alias show') and retry."
            )
        if value == current and head is not None:
            raise UsageError(f"alias {name!r} already points at {value!r}")
        payload = {"value": value, "previous": current, "actor": actor(), "ts": utcnow(),
                   "action": action, "reason": reason}
        if action == "promote":
            payload |= {"report_id": report_id, "override": override}
        try:
            rec = self.store.refs.append(key, head.seq if head else 0, payload)
        except ConflictError:
            raise AliasConflictError(
                f"alias {name!r} was switched by another writer while this one was switching it "
                f"(both expected {current!r}); nothing was changed by this command. Re-read and retry."
            ) from None
        return self._state(name, rec)

    def _rollback(self, name: str, *, reason: str | None = None, expect: Any = UNSET) -> AliasState:
        """Point ``name`` back at the value its latest switch replaced (O(1))."""
        state = self.get(name)
        if state is None or state.previous is None:
            raise UsageError(f"alias {name!r} has no previous value to roll back to")
        if expect is not UNSET and expect != state.value:
            raise AliasConflictError(f"alias {name!r} points at {state.value!r}, not the expected {expect!r}")
        return self._switch(name, state.previous, expect=state.value, reason=reason, action="rollback")
