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


def recompute_escalation(ticket: Ticket, config: Config, now: datetime | None = None) -> None:
    """Store the three deadlines and their notify instants on the ticket (indexed)."""
    from gateway.escalation import TicketClock, compute_deadlines

    queue = config.queues.get(ticket.queue)
    calendar = config.calendars.get(queue.calendar if queue else "default") \
        or config.calendars.get("default")
    state_type = config.state_type(ticket.state)
    clock = TicketClock(
        created=ticket.created, first_agent_contact=ticket.first_agent_contact,
        last_contact=ticket.last_contact,
        closed=state_type in ("closed", "removed", "merged"),
        suspended=state_type.startswith("pending"))
    if queue is None or calendar is None or queue.escalation is None:
        deadlines = None
    else:
        deadlines = compute_deadlines(clock, queue.escalation, calendar)
    for kind in ("first_response", "update", "solution"):
        for suffix in ("due", "notify"):
            attr = f"{kind}_{suffix}"
            value = None
            if deadlines is not None:
                value = getattr(deadlines, kind if suffix == "due" else f"{kind}_notify")
            setattr(ticket, attr, value)
    ticket.escalation_next = deadlines.next_due() if deadlines is not None else None


def touch(ticket: Ticket, config: Config) -> None:
    ticket.changed = utcnow()
    recompute_escalation(ticket, config)
