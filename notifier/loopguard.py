"""The last line against mail loops: at most ``outbound.auto_response_limit`` automatic
answers (auto-responses and answers to agents' commands) per address per 24 hours, counted
from the outbound queue itself, so the limit holds across restarts and several daemons.
Everything upstream (auto-submitted, bulk, list, bounce, spam, no-reply, our own addresses)
is decided by the pre-filters; see filters/builtin/auto_submitted.py."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway.config.auto_responses import AUTO_RESPONSE_TYPES
from gateway.store.models import utcnow
from gateway.store.models import OutboundMail

AUTO_KINDS = AUTO_RESPONSE_TYPES
WINDOW = timedelta(hours=24)


def sent_recently(session, address: str, now=None) -> int:
    now = now or utcnow()
    return session.execute(select(func.count()).select_from(OutboundMail).where(
        OutboundMail.rcpt_key == address.lower(), OutboundMail.kind.in_(AUTO_KINDS),
        OutboundMail.created >= now - WINDOW)).scalar_one()


def allowed(session, config, address: str) -> tuple[bool, str]:
    limit = config.outbound["auto_response_limit"]
    count = sent_recently(session, address)
    if count >= limit:
        return False, f"loop protection: {count} auto-responses to {address} in 24 h " \
                      f"(limit {limit})"
    return True, ""

