"""Emitting events: one row in the caller's transaction, plus a delivery for each subscribed endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kaanha.events.notify import notify_committed
from kaanha.kit.clock import now
from kaanha.kit.ids import new_id
from kaanha.kit.schemas import Schema
from kaanha.models import Event
from kaanha.webhooks.fanout import fan_out


async def emit(session: AsyncSession, *, organization_id: str, type: str, data: Schema | dict[str, Any]) -> Event:
    """Record that something happened: it exists, and will be delivered, exactly when the change commits.

    `data` is the resource as the API shows it (a public schema, dumped to JSON here).
    """
    payload = data.model_dump(mode="json") if isinstance(data, Schema) else data
    event = Event(id=new_id("evt"), organization_id=organization_id, type=type, data=payload, created_at=now())
    session.add(event)
    await fan_out(session, event)
    session.info.setdefault("events_emitted", set()).add(organization_id)
    return event


def body(event: Event) -> dict[str, Any]:
    """An event as webhooks and the stream send it: `{id, type, timestamp, data}`."""
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": event.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": event.data,
    }


@orm_event.listens_for(Session, "after_commit")
def _announce_after_commit(session: Session) -> None:
    organizations = session.info.pop("events_emitted", None)
    if organizations:
        notify_committed(organizations)


@orm_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("events_emitted", None)
