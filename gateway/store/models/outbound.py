"""Tables the notifier writes: the durable outbound mail queue and once-only escalation events."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, UTCDateTime, utcnow


class OutboundMail(Base):
    """One outgoing mail. Committed in the same transaction as what caused it; delivered by
    the sender worker; never deleted (sent and failed rows stay as the record)."""

    __tablename__ = "outbound_mail"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    article_id: Mapped[int | None] = mapped_column(ForeignKey("article.id"))
    kind: Mapped[str] = mapped_column(String(40))          # auto_reply, agent_reply, notification
    mail_from: Mapped[str] = mapped_column(String(998))
    rcpt_to: Mapped[list] = mapped_column(JSON)
    rcpt_key: Mapped[str] = mapped_column(String(320), index=True)  # first recipient, lower
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # pending -> sent | failed ; retrying = pending with attempts > 0
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the claim that leases the row (a fresh random token per claim, by the database's clock
    # in claimed_until); a result is recorded only while the row still carries this token
    lease_token: Mapped[str | None] = mapped_column(String(36), index=True)
    # UTF-8 in an envelope address or a header (RFC 6531/6532): send only with SMTPUTF8
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EscalationEvent(Base):
    """An escalation (or timer) event that has been emitted: the unique key makes it once,
    across restarts and with several daemons on one database."""

    __tablename__ = "escalation_event"
    __table_args__ = (UniqueConstraint("ticket_id", "event", "instant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    event: Mapped[str] = mapped_column(String(60))
    instant: Mapped[datetime] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
