"""The last line against mail loops: a limit on the mail we send to one address in 24 hours,
counted from the outbound queue itself (every kind: auto-responses, notifications, agent
replies and answers), so the limit holds across restarts and several daemons.

- an auto-response is not sent once ``outbound.auto_response_limit`` mails of any kind went
  to the address in 24 h;
- a mail a mail made us send (an agent's reply, an answer about refused commands, an agent
  notification) is not sent once ``outbound.ticket_mail_limit`` mails of any kind went to the
  address about the same ticket in 24 h: a loop always runs on one ticket, so a busy agent's
  notifications about many tickets are never held back.

Everything upstream (auto-submitted, bulk, list, bounce, spam, no-reply, our own addresses,
vacation replies from agents) is decided by the pre-filters and gateway/agents/mail_commands.py;
see filters/builtin/auto_submitted.py."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway.config.auto_responses import AUTO_RESPONSE_TYPES
from gateway.store.models import utcnow
from gateway.store.models import OutboundMail

AUTO_KINDS = AUTO_RESPONSE_TYPES
WINDOW = timedelta(hours=24)


def sent_recently(session, address: str, now=None, ticket_id: int | None = None) -> int:
    """Mails of every kind queued to ``address`` in the last 24 h (about ``ticket_id`` only,
    when given)."""
    now = now or utcnow()
    query = select(func.count()).select_from(OutboundMail).where(
        OutboundMail.rcpt_key == address.lower(), OutboundMail.created >= now - WINDOW)
    if ticket_id is not None:
        query = query.where(OutboundMail.ticket_id == ticket_id)
    return session.execute(query).scalar_one()


def allowed(session, config, address: str, kind: str = "auto_reply",
            ticket_id: int | None = None) -> tuple[bool, str]:
    """May a mail of ``kind`` go to ``address`` now? (False, why) when the limit is reached."""
    if kind in AUTO_KINDS:
        limit = config.outbound["auto_response_limit"]
        count = sent_recently(session, address)
        if count >= limit:
            return False, f"loop protection: {count} mails to {address} in 24 h " \
                          f"(auto_response_limit {limit})"
        return True, ""
    limit = config.outbound.get("ticket_mail_limit", 20)
    count = sent_recently(session, address, ticket_id=ticket_id)
    if count >= limit:
        return False, f"loop protection: {count} mails to {address} about this ticket in " \
                      f"24 h (ticket_mail_limit {limit})"
    return True, ""
