"""Every ticketgate table on one metadata: importing this package gives Alembic the whole schema.

The schema itself is created by the Alembic migrations (gateway/store/migrations); these
classes must match them, which ``tests/test_store_schema.py`` checks. A new table gets its
model in a module here, imported below, and one new migration file.
"""
from gateway.store.models.agents import AppliedAgentMail, message_key
from gateway.store.models.base import Base, UTCDateTime, utcnow
from gateway.store.models.outbound import EscalationEvent, OutboundMail
from gateway.store.models.tickets import (Article, ArticleAttachment, Blob, Counter, History,
                                          InboundMail, Ticket)

__all__ = ["Base", "UTCDateTime", "utcnow", "InboundMail", "Ticket", "Article", "Blob",
           "ArticleAttachment", "History", "Counter", "OutboundMail", "EscalationEvent",
           "AppliedAgentMail", "message_key"]
