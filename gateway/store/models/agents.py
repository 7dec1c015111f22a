"""Agents' mail that has been acted on: one row per (Message-ID, agent, ticket), so a copy of
the same mail re-sent by anyone runs its #commands and reaches the customer only once."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models.base import Base, UTCDateTime, utcnow


def message_key(message_id: str) -> str:
    """SHA-256 of the Message-ID without angle brackets and surrounding space (ids may be up to
    998 characters: too long for some databases' unique indexes)."""
    return hashlib.sha256(message_id.strip().strip("<>").strip().encode("utf-8",
                                                                        "surrogatepass")
                          ).hexdigest()


class AppliedAgentMail(Base):
    __tablename__ = "applied_agent_mail"
    __table_args__ = (UniqueConstraint("message_key", "agent", "ticket_id",
                                       name="uq_applied_agent_mail"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_key: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(Text)
    agent: Mapped[str] = mapped_column(String(200))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("article.id"))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
