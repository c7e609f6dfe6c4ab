"""The audit log: every change to the store appends one event (when, who, what, why)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from embedops.records import actor, dumps, loads
from embedops.store import Store, utcnow

EVENTS_TABLE = "events"
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", pa.string(), nullable=False),
        pa.field("actor", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("details", pa.string()),
    ]
)


@dataclass(frozen=True)
class AuditEvent:
    """One change: ``action`` (e.g. ``model.register``) done to ``subject`` by ``actor`` at ``ts``."""

    ts: str
    actor: str
    action: str
    subject: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "ts": self.ts, "actor": self.actor, "action": self.action,
            "subject": self.subject, "reason": self.reason, "details": self.details,
        }


class AuditLog:
    """Append-only events table of a store."""

    def __init__(self, store: Store):
        self.store = store

    def _table(self):
        return self.store.table(EVENTS_TABLE, EVENTS_SCHEMA)

    def record(self, action: str, subject: str, *, reason: str | None = None, by: str | None = None,
               **details: Any) -> AuditEvent:
        """Append one event; ``by`` names the actor (default: :func:`embedops.records.actor`)."""
        event = AuditEvent(
            ts=utcnow(), actor=by or actor(), action=action, subject=subject, reason=reason,
            details=details, event_id=uuid.uuid4().hex,
        )
        row = event.to_dict() | {"details": dumps(details)}
        self._table().add(pa.Table.from_pylist([row], schema=EVENTS_SCHEMA))
        return event

    def events(self) -> list[AuditEvent]:
        rows = self._table().to_arrow().to_pylist()
        events = [
            AuditEvent(
                ts=r["ts"], actor=r["actor"], action=r["action"], subject=r["subject"],
                reason=r["reason"], details=loads(r["details"]), event_id=r["event_id"],
            )
            for r in rows
        ]
        return sorted(events, key=lambda e: e.ts)
