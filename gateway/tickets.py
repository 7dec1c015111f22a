"""Ticket store operations: create tickets, add articles and attachments, change fields, and
write history. Every change recomputes the ticket's escalation deadlines (gateway.sla.clock).
"""
from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config.model import Config
from gateway.mail import Attachment
from gateway.sla import clock
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


def touch(ticket: Ticket, config: Config) -> None:
    ticket.changed = utcnow()
    clock.solution_clock(ticket, config, ticket.changed)
    clock.recompute_escalation(ticket, config)
