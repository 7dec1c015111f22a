"""Queueing outgoing mail: ``queue_mail()`` adds a row in the caller's transaction, so a mail
exists exactly when the event that caused it was committed; ``outgoing_article()`` is the
ticket's record of a mail we send; ``ticket_for_message_id()`` lets a reply to any mail of
ours find its ticket; ``retry()`` puts a mail back in the queue; ``one_mail()`` keeps an
error while building one mail to that mail alone."""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from email.message import Message

from sqlalchemy import select

from gateway.store.models import Article, OutboundMail, Ticket, utcnow
from gateway.tickets import add_history
from notifier.message import body_text, clean, envelope_address, needs_smtputf8, wire_bytes

log = logging.getLogger("ticketgate.outbound")


def outbound_row(message: Message, *, mail_from: str, rcpt_to: list[str],
                 ticket_id: int | None = None, article_id: int | None = None,
                 kind: str = "mail") -> OutboundMail:
    """The queue row for an outgoing mail, not yet added to a session: everything that can
    fail about a mail (its bytes, its envelope) fails here. The envelope addresses are
    stored as they go on the wire (domains in IDNA 2008 A-labels); ``smtputf8`` says
    whether the mail can only be sent with SMTPUTF8 (a UTF-8 local part). Raises
    message.BuildError for an address no mail can carry."""
    sender = envelope_address(mail_from) if mail_from else ""
    rcpts = [envelope_address(r) for r in rcpt_to]
    raw = wire_bytes(message)
    return OutboundMail(
        ticket_id=ticket_id, article_id=article_id, kind=kind, mail_from=sender,
        rcpt_to=rcpts, rcpt_key=(rcpt_to[0] if rcpt_to else "").lower()[:320],
        message_id=str(message["Message-ID"]).strip().strip("<>"),
        subject=str(message["Subject"] or ""), raw=raw,
        smtputf8=needs_smtputf8(raw, sender, *rcpts),
        status="pending", attempts=0, next_attempt=utcnow())


def queue_mail(session, message: Message, *, mail_from: str, rcpt_to: list[str],
               ticket_id: int | None = None, article_id: int | None = None,
               kind: str = "mail") -> OutboundMail:
    """Add an outgoing mail to the queue in the caller's transaction (see outbound_row)."""
    row = outbound_row(message, mail_from=mail_from, rcpt_to=rcpt_to, ticket_id=ticket_id,
                       article_id=article_id, kind=kind)
    session.add(row)
    return row


class MailAttempt:
    """What ``one_mail`` tells its caller: ``ok`` is False when the mail was skipped."""

    def __init__(self):
        self.ok, self.why = False, ""


@contextmanager
def one_mail(session, ticket, article, what: str):
    """Build one outgoing mail so that its failure is its own: if anything in the block
    raises (a value no mail can carry, a bug in a helper), that mail alone is skipped, the
    ticket history says what was not sent and why, and the ticket, the article and every
    other mail stay. The block builds the message and its ``outbound_row`` and writes
    nothing; the caller adds the row to the session after the block when ``attempt.ok``.
    (A SAVEPOINT per mail would also cover a row the database refuses, but costs a flush and
    two statements per mail: 600 mails of bench/ingest.py took 35 s instead of 24 s; a built
    row holds only cleaned values, so the database has nothing left to refuse.)
    ``what`` names the mail."""
    attempt = MailAttempt()
    try:
        yield attempt
        attempt.ok = True
    except Exception as exc:  # noqa: BLE001 - any error in one mail is that mail's alone
        why = f"{type(exc).__name__}: {exc}"
        attempt.why = clean(why.encode("utf-8", "backslashreplace").decode("utf-8"), 500)
        log.warning("ticket %s: %s not sent: %s", getattr(ticket, "number", "-"), what,
                    attempt.why)
        if ticket is not None:
            add_history(session, ticket, "SendSkipped",
                        f"{clean(what, 300)} not sent (this mail alone skipped; the ticket "
                        f"and its article are stored): {attempt.why}", article)


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
