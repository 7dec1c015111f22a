"""Ticket store operations: create tickets, add articles and attachments, change fields, and
write history. Every change recomputes the ticket's escalation deadlines.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config.model import Config
from gateway.mail import Attachment
from gateway.store.models import Article, ArticleAttachment, Blob, History, Ticket, utcnow


def add_history(session: Session, ticket: Ticket, type_: str, message: str,
                article: Article | None = None, **data) -> History:
    entry = History(ticket=ticket, article=article, type=type_, message=message, data=data,
                    created=utcnow())
    session.add(entry)
    return entry


def store_blob(session: Session, data: bytes) -> Blob:
    """The one Blob for this content (found, or new and flushed with the article)."""
    digest = hashlib.sha256(data).hexdigest()
    pending = session.info.setdefault("new_blobs", {})
    blob = pending.get(digest)
    if blob is None:
        with session.no_autoflush:
            blob = session.execute(select(Blob).where(Blob.sha256 == digest)).scalar()
        if blob is None:
            blob = Blob(sha256=digest, size=len(data), data=data)
            session.add(blob)
            pending[digest] = blob
    return blob


def add_attachments(session: Session, article: Article, attachments: list[Attachment]) -> None:
    for att in attachments:
        session.add(ArticleAttachment(
            article=article, blob=store_blob(session, att.data), filename=att.filename,
            content_type=att.content_type, content_id=att.content_id,
            disposition=att.disposition))


def set_field(session: Session, ticket: Ticket, field: str, value, reason: str,
              article: Article | None = None) -> bool:
    """Change one ticket field with a history line saying why. Returns True if it changed."""
    old = getattr(ticket, field)
    if old == value:
        return False
    setattr(ticket, field, value)
    names = {"state": "StateUpdate", "queue": "Move", "priority": "PriorityUpdate",
             "owner": "OwnerUpdate", "responsible": "ResponsibleUpdate", "locked": "Lock",
             "type": "TypeUpdate", "title": "TitleUpdate", "customer_user": "CustomerUpdate",
             "customer_id": "CustomerUpdate"}
    add_history(session, ticket, names.get(field, "FieldUpdate"),
                f"{field}: {old!r} -> {value!r} ({reason})", article, field=field,
                old=old, new=value)
    return True


DEADLINE_COLUMNS = ("first_response_due", "first_response_notify", "update_due",
                    "update_notify", "solution_due", "solution_notify", "escalation_next")


def deadlines_for(config: Config, queue_name: str, state: str, created: datetime,
                  first_agent_contact: datetime | None, last_contact: datetime | None,
                  fields: dict | None = None, dynamic_fields: dict | None = None,
                  paused_minutes: int = 0) -> dict:
    """The deadline columns of a ticket with these values (all None when it cannot escalate).

    Times come from the first matching SLA (gateway/sla.py; ``fields`` has type, customer_id,
    customer_user, priority), else from the queue. Closed, removed and merged tickets have no
    deadlines; pending ones neither while ``escalation.suspend_pending`` is on (default)."""
    from gateway import sla as sla_mod
    from gateway.escalation import TicketClock, compute_deadlines

    out = dict.fromkeys(DEADLINE_COLUMNS)
    queue = config.queues.get(queue_name)
    if queue is None:
        return out
    times, calendar_name = queue.escalation, queue.calendar
    sla = sla_mod.find(config, {**(fields or {}), "queue": queue_name}, dynamic_fields)
    if sla is not None:
        times, calendar_name = sla.escalation, sla.calendar or queue.calendar
    if times is None:
        return out
    calendar = config.calendars.get(calendar_name) or config.calendars.get("default")
    state_type = config.state_type(state)
    suspend = config.escalation["suspend_pending"]
    clock = TicketClock(created=created, first_agent_contact=first_agent_contact,
                        last_contact=last_contact,
                        closed=state_type in ("closed", "removed", "merged"),
                        suspended=suspend and state_type.startswith("pending"),
                        solution_time_paused_minutes=max(int(paused_minutes or 0), 0))
    deadlines = compute_deadlines(clock, times, calendar)
    for kind in ("first_response", "update", "solution"):
        out[f"{kind}_due"] = getattr(deadlines, kind)
        out[f"{kind}_notify"] = getattr(deadlines, f"{kind}_notify")
    out["escalation_next"] = deadlines.next_due()
    return out


def sla_fields(ticket) -> dict:
    return {"type": ticket.type, "customer_id": ticket.customer_id,
            "customer_user": ticket.customer_user, "priority": ticket.priority}


def recompute_escalation(ticket: Ticket, config: Config) -> None:
    """Store the three deadlines and their notify instants on the ticket (indexed)."""
    values = deadlines_for(config, ticket.queue, ticket.state, ticket.created,
                           ticket.first_agent_contact, ticket.last_contact, sla_fields(ticket),
                           ticket.dynamic_fields, ticket.solution_paused_minutes)
    for column, value in values.items():
        setattr(ticket, column, value)


def solution_clock(ticket: Ticket, config: Config, now: datetime) -> None:
    """Stop the solution clock when the ticket closes (or is suspended in pending), and on
    reopening add the working minutes it was stopped, so solution time resumes, not restarts."""
    state_type = config.state_type(ticket.state)
    stopped = state_type in ("closed", "removed", "merged") or (
        state_type.startswith("pending") and config.escalation["suspend_pending"])
    if stopped and ticket.solution_stopped_at is None:
        ticket.solution_stopped_at = now
    elif not stopped and ticket.solution_stopped_at is not None:
        queue = config.queues.get(ticket.queue)
        calendar = config.calendars.get(queue.calendar if queue else "default") or \
            config.calendars["default"]
        ticket.solution_paused_minutes = (ticket.solution_paused_minutes or 0) + \
            calendar.between(ticket.solution_stopped_at, now)
        ticket.solution_stopped_at = None


def touch(ticket: Ticket, config: Config) -> None:
    ticket.changed = utcnow()
    solution_clock(ticket, config, ticket.changed)
    recompute_escalation(ticket, config)
