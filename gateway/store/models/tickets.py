"""Intake and ticket tables: inbound mail, tickets, articles, attachments, history, counters."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy import false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.store.models.base import Base, UTCDateTime, utcnow


class InboundMail(Base):
    """A raw mail exactly as received, committed before anything else happens to it."""

    __tablename__ = "inbound_mail"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200))
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list] = mapped_column(JSON, default=list)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    dispatch_queue: Mapped[str | None] = mapped_column(String(200))  # from the mail account
    # pending -> done | ignored | quarantined ; attempts counts failed processing runs
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    trace: Mapped[list] = mapped_column(JSON, default=list)
    authenticated_user: Mapped[str | None] = mapped_column(String(320))  # SMTP AUTH (0002_agents)
    # the source's MTA removes foreign Authentication-Results (0005_agent_replays)
    trust_auth_results: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())


class Ticket(Base):
    __tablename__ = "ticket"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(50), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(100), index=True)
    priority: Mapped[str] = mapped_column(String(100))
    type: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(200))
    responsible: Mapped[str | None] = mapped_column(String(200))
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    customer_user: Mapped[str | None] = mapped_column(String(998))
    customer_id: Mapped[str | None] = mapped_column(String(200))
    dynamic_fields: Mapped[dict] = mapped_column(JSON, default=dict)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # escalation clock and deadlines (recomputed on every change; see gateway/sla/clock.py)
    first_agent_contact: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_contact: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_notify: Mapped[datetime | None] = mapped_column(UTCDateTime)
    update_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    update_notify: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solution_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solution_notify: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_next: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # the solution clock stops while a ticket is closed (or suspended in pending) and resumes
    # when it is reopened: working minutes stopped so far, and since when it is stopped
    # (0004_solution_clock)
    solution_paused_minutes: Mapped[int] = mapped_column(Integer, default=0,
                                                         server_default="0")
    solution_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # #pending (0002_agents)

    articles: Mapped[list["Article"]] = relationship(back_populates="ticket",
                                                     order_by="Article.id")
    history: Mapped[list["History"]] = relationship(back_populates="ticket",
                                                    order_by="History.id")


class Article(Base):
    __tablename__ = "article"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_mail.id"), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    direction: Mapped[str] = mapped_column(String(10))        # in | out
    sender_type: Mapped[str] = mapped_column(String(20))      # customer | agent | system
    kind: Mapped[str] = mapped_column(String(20), default="email")  # email | bounce | note
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    from_addr: Mapped[str] = mapped_column(Text, default="")
    to_addr: Mapped[str] = mapped_column(Text, default="")
    cc_addr: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(100), default="text/plain")
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[dict] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="articles")
    attachments: Mapped[list["ArticleAttachment"]] = relationship(back_populates="article",
                                                                  order_by="ArticleAttachment.id")


class Blob(Base):
    """Attachment content, stored once per SHA-256."""

    __tablename__ = "blob"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ArticleAttachment(Base):
    __tablename__ = "article_attachment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("article.id"), index=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blob.id"))
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(200))
    content_id: Mapped[str | None] = mapped_column(String(998))
    disposition: Mapped[str] = mapped_column(String(20), default="attachment")

    article: Mapped[Article] = relationship(back_populates="attachments")
    blob: Mapped[Blob] = relationship()


class History(Base):
    """Why something happened to a ticket: every routing decision, with its reason."""

    __tablename__ = "history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    article_id: Mapped[int | None] = mapped_column(ForeignKey("article.id"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="history")
    article: Mapped["Article | None"] = relationship()


class Counter(Base):
    """Named counters (ticket numbers); incremented under a row lock."""

    __tablename__ = "counter"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_article_ticket_created", Article.ticket_id, Article.created)
