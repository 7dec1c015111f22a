"""The escalation scan (every minute in the daemon): tickets whose ``escalation_next`` has
passed get their due events (notify-before and breach of first response, update, solution)
emitted exactly once: each event is a row with a unique (ticket, event, instant) key, so a
restart or a second daemon on the same database cannot emit it again."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.sla.deadlines import EVENTS, Deadlines, due_events
from gateway.store.models import Ticket
from gateway.tickets import add_history
from gateway.store.models import EscalationEvent
from notifier.notifications import notify

log = logging.getLogger("ticketgate.escalation")
COLUMNS = {"first_response": "first_response_due", "first_response_notify":
           "first_response_notify", "update": "update_due", "update_notify": "update_notify",
           "solution": "solution_due", "solution_notify": "solution_notify"}


def deadlines_of(ticket: Ticket) -> Deadlines:
    return Deadlines(**{kind: getattr(ticket, column) for kind, column in COLUMNS.items()})


def emit_once(session, ticket_id: int, event: str, instant: datetime) -> bool:
    """Record the event; False when it was emitted before (by us or another daemon)."""
    try:
        with session.begin_nested():
            session.add(EscalationEvent(ticket_id=ticket_id, event=event, instant=instant))
        return True
    except IntegrityError:
        return False


def scan(store, config, now: datetime | None = None, limit: int = 500) -> list[tuple]:
    """Emit due escalation events; returns (ticket number, event) for each emitted."""
    now = now or datetime.now(timezone.utc)
    emitted = []
    with store.session() as session:
        query = select(Ticket).where(Ticket.escalation_next <= now) \
            .order_by(Ticket.escalation_next).limit(limit)
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for ticket in session.execute(query).scalars():
            deadlines = deadlines_of(ticket)
            for event, kind, instant in due_events(deadlines, None, now):
                if not emit_once(session, ticket.id, event, instant):
                    continue
                add_history(session, ticket, event, f"{kind.replace('_', ' ')} deadline "
                                                    f"{instant:%Y-%m-%d %H:%M} UTC reached")
                notify(config, session, ticket, event,
                       detail=f"Deadline: {instant:%Y-%m-%d %H:%M} UTC")
                emitted.append((ticket.number, event))
            upcoming = [v for _, v in deadlines.items() if v > now]
            ticket.escalation_next = min(upcoming) if upcoming else None
    if emitted:
        log.info("escalation scan: %d event(s) emitted", len(emitted))
    return emitted


def job(app) -> None:
    scan(app.store, app.config)


__all__ = ["scan", "job", "EVENTS"]
