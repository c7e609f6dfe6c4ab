"""Aliases (``production``, ``shadow``, any name): named pointers to an index.

Every switch is a compare-and-swap on the alias's log in the store's refs (see embedops.refs): the
writer names the value it expects to replace, and of two writers racing on one alias exactly one
wins; the other gets :class:`AliasConflictError`. Each record keeps the value it replaced, so a
rollback is one more O(1) switch back to ``previous``, whatever the corpus size.

A record may also carry a **canary**: another index that answers a share of the alias's traffic
(``percent``, sticky by client key). The split is part of the alias's record, so every server
following the alias agrees on it; starting, ramping and aborting a canary are compare-and-swaps on
the same log, which keep ``value`` (the stable index) and carry ``previous`` (the rollback target).

Only :class:`embedops.registry.Registry` writes aliases: its ``promote`` and ``start_canary``
enforce the promotion rule (:mod:`embedops.registry.promotion`); its ``rollback`` and
``abort_canary`` are always allowed. The write methods here are private to the registry package;
everything else reads.
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
class Canary:
    """An index answering ``percent`` of an alias's traffic (sticky by client key) beside its value."""

    index_id: str
    percent: float
    report_id: str | None = None  # the guard report that authorised it
    override: bool = False  # started without an authorising report (explicit, with a reason)

    def to_dict(self) -> dict[str, Any]:
        return {"index_id": self.index_id, "percent": self.percent, "report_id": self.report_id,
                "override": self.override}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Canary | None:
        if not data:
            return None
        return cls(data["index_id"], float(data["percent"]), data.get("report_id"), bool(data.get("override", False)))


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
    canary: Canary | None = None  # an index answering a share of the traffic, if any
    automatic: bool = False  # made by a server's rollback policy ([serve.rollback]), not by a person

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "seq": self.seq, "value": self.value, "previous": self.previous,
            "actor": self.actor, "ts": self.ts, "action": self.action, "reason": self.reason,
            "report_id": self.report_id, "override": self.override,
            "canary": self.canary.to_dict() if self.canary else None, "automatic": self.automatic,
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
            override=bool(p.get("override", False)), canary=Canary.from_dict(p.get("canary")),
            automatic=bool(p.get("automatic", False)),
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

    def history(self, name: str, *, last: int | None = None, before: int | None = None) -> list[AliasState]:
        """The alias's records, oldest first: all, or the ``last`` ones before record ``before``."""
        return [self._state(name, r) for r in self.store.refs.records(self._key(name), last=last, before=before)]

    def list(self) -> list[AliasState]:
        out = []
        for key in self.store.refs.keys(_PREFIX):
            state = self.get(key.split("/", 1)[1])
            if state is not None:
                out.append(state)
        return out

    def _switch(self, name: str, value: str | None, *, expect: Any = UNSET, reason: str | None = None,
                action: str = "set", report_id: str | None = None, override: bool = False,
                by: str | None = None, automatic: bool = False) -> AliasState:
        """Point ``name`` at ``value`` if it still points at ``expect`` (default: what we just read);
        the new record has no canary.

        The compare-and-swap primitive: no checks of what ``value`` is. Call it only from
        :class:`embedops.registry.Registry`, which applies the promotion rule first. ``by`` names
        the actor (default: :func:`embedops.records.actor`); ``automatic`` marks a switch a server's
        rollback policy made."""
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
        payload = {"value": value, "previous": current, "actor": by or actor(), "ts": utcnow(),
                   "action": action, "reason": reason}
        if action == "promote":
            payload |= {"report_id": report_id, "override": override}
        if automatic:
            payload["automatic"] = True
        return self._append(name, head, payload, current)

    def _append(self, name: str, head, payload: dict[str, Any], current: str | None) -> AliasState:
        try:
            rec = self.store.refs.append(self._key(name), head.seq if head else 0, payload)
        except ConflictError:
            raise AliasConflictError(
                f"alias {name!r} was switched by another writer while this one was switching it "
                f"(both expected {current!r}); nothing was changed by this command. Re-read and retry."
            ) from None
        return self._state(name, rec)

    def _set_canary(self, name: str, canary: Canary | None, *, expect: str, expect_canary: Any = UNSET,
                    reason: str | None = None, action: str, by: str | None = None,
                    automatic: bool = False) -> AliasState:
        """Start, ramp or end (``canary=None``) the alias's canary, keeping its value (``expect``) and
        carrying its rollback target; a compare-and-swap like :meth:`_switch`. ``expect_canary`` is the
        canary index id expected now (None: no canary). Call it only from the Registry."""
        head = self.store.refs.head(self._key(name))
        state = self._state(name, head) if head else None
        if state is None or state.value != expect:
            raise AliasConflictError(
                f"alias {name!r} points at {state.value if state else None!r}, not the expected {expect!r}; "
                "someone else switched it. Re-read it ('embedops alias show') and retry.")
        running = state.canary.index_id if state.canary else None
        if expect_canary is not UNSET and expect_canary != running:
            raise AliasConflictError(f"alias {name!r} has canary {running or 'none'}, not the expected "
                                     f"{expect_canary or 'none'}; someone else changed it. Re-read and retry.")
        payload = {"value": state.value, "previous": state.previous, "actor": by or actor(), "ts": utcnow(),
                   "action": action, "reason": reason,
                   # the value did not move: what authorised it (a report, or an override) still stands
                   "report_id": state.report_id, "override": state.override}
        if canary is not None:
            payload["canary"] = canary.to_dict()
        if automatic:
            payload["automatic"] = True
        return self._append(name, head, payload, state.value)

    def _rollback(self, name: str, *, reason: str | None = None, expect: Any = UNSET,
                  by: str | None = None, automatic: bool = False) -> AliasState:
        """Point ``name`` back at the value its latest switch replaced (O(1)); ends any canary."""
        state = self.get(name)
        if state is None or state.previous is None:
            raise UsageError(f"alias {name!r} has no previous value to roll back to")
        if expect is not UNSET and expect != state.value:
            raise AliasConflictError(f"alias {name!r} points at {state.value!r}, not the expected {expect!r}")
        return self._switch(name, state.previous, expect=state.value, reason=reason, action="rollback", by=by,
                            automatic=automatic)
