"""Queueing outgoing mail: ``queue_mail()`` adds a row in the caller's transaction, so a mail
exists exactly when the event that caused it was committed; ``outgoing_article()`` is the
ticket's record of a mail we send; ``ticket_for_message_id()`` lets a reply to any mail of
ours find its ticket; ``retry()`` puts a mail back in the queue."""
from __future__ import annotations

import re
from email.message import Message

from sqlalchemy import select

from gateway.store.models import Article, OutboundMail, Ticket, utcnow
from notifier.message import body_text, wire_bytes


def queue_mail(session, message: Message, *, mail_from: str, rcpt_to: list[str],
               ticket_id: int | None = None, article_id: int | None = None,
               kind: str = "mail") -> OutboundMail:
    """Add an outgoing mail to the queue in the caller's transaction."""
    row = OutboundMail(
        ticket_id=ticket_id, article_id=article_id, kind=kind, mail_from=mail_from,
        rcpt_to=list(rcpt_to), rcpt_key=(rcpt_to[0] if rcpt_to else "").lower()[:320],
        message_id=str(message["Message-ID"]).strip().strip("<>"),
        subject=str(message["Subject"] or ""), raw=wire_bytes(message),
        status="pending", attempts=0, next_attempt=utcnow())
    session.add(row)
    return row


def outgoing_article(session, ticket, message: Message, *, sender_type: str = "system",
                     internal: bool = False, flags: dict | None = None) -> Article:
    """The ticket's record of a mail we send (direction "out"): its Message-ID is what a
    customer's reply names in In-Reply-To/References, so the reply joins this ticket."""
    def ids(value) -> str | None:
        return " ".join(_MSGID.findall(str(value))) or None if value else None

    article = Article(
        ticket=ticket, direction="out", sender_type=sender_type, kind="email",
        internal=internal, from_addr=str(message["From"] or ""), to_addr=str(message["To"] or ""),
        cc_addr=str(message["Cc"] or ""), subject=str(message["Subject"] or ""),
        body=body_text(message) if not message.is_multipart() else "",
        content_type="text/plain", message_id=str(message["Message-ID"]).strip().strip("<>"),
        in_reply_to=(str(message["In-Reply-To"]).strip().strip("<>")
                     if message["In-Reply-To"] else None),
        references=ids(message["References"]), flags=dict(flags or {}), created=utcnow())
    session.add(article)
    return article


_MSGID = re.compile(r"<([^<>\s]+)>")


def ticket_for_message_id(session, message_id: str):
    """Follow-up lookup: the ticket a mail we sent (by its Message-ID) belongs to."""
    row = session.execute(select(OutboundMail.ticket_id).where(
        OutboundMail.message_id == message_id, OutboundMail.ticket_id.is_not(None))
        .order_by(OutboundMail.id.desc()).limit(1)).scalar()
    return session.get(Ticket, row) if row is not None else None


def retry(store, outbound_id: int) -> bool:
    """Put a failed (or waiting) mail back in the queue, due now. False if unknown or sent."""
    with store.session() as session:
        row = session.get(OutboundMail, outbound_id)
        if row is None or row.status == "sent":
            return False
        row.status, row.next_attempt, row.claimed_until = "pending", utcnow(), None
        row.created = utcnow()   # a fresh give-up window
        return True
