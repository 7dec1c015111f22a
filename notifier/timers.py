"""Time-driven ticket rules (a daemon job every minute):

- **unlock timeout**: a locked ticket in a queue with ``unlock_timeout`` (working minutes in the
  queue's calendar) and no agent activity for that long is unlocked and its owner told;
- **pending reminder**: when ``pending_until`` passes on a ticket in a "pending reminder"
  state, the owner is reminded (once per pending time);
- **pending auto close**: when it passes on a "pending auto close+/-" ticket, the ticket is
  closed successful / unsuccessful.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from gateway import tickets
from gateway.sla.clock import calendar_for
from gateway.store.models import Article, History, Ticket
from notifier.escalation_watch import emit_once
from notifier.notifications import PENDING_REMINDER, UNLOCK_TIMEOUT, notify

AUTO_CLOSE = {"pending auto close+": "closed successful",
              "pending auto close-": "closed unsuccessful"}


def last_agent_activity(session, ticket: Ticket) -> datetime:
    """Latest agent article or lock/owner change; the ticket's creation at the earliest."""
    article = session.execute(select(func.max(Article.created)).where(
        Article.ticket_id == ticket.id, Article.sender_type == "agent")).scalar()
    change = session.execute(select(func.max(History.created)).where(
        History.ticket_id == ticket.id, History.type.in_(("Lock", "OwnerUpdate")))).scalar()
    times = [t for t in (article, change, ticket.created) if t is not None]
    return max(t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in times)


def unlock_timeouts(store, config, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    queues = [q.name for q in config.queues.values() if q.unlock_timeout > 0]
    unlocked = []
    if not queues:
        return unlocked
    with store.session() as session:
        for ticket in session.execute(select(Ticket).where(
                Ticket.locked.is_(True), Ticket.queue.in_(queues))).scalars():
            queue = config.queues[ticket.queue]
            if config.is_closed(ticket.state):
                continue
            calendar = calendar_for(config, queue.name)   # the queue's: unlock is not an SLA time
            idle = calendar.between(last_agent_activity(session, ticket), now)
            if idle < queue.unlock_timeout:
                continue
            tickets.set_field(session, ticket, "locked", False,
                              f"unlock timeout: {idle} working minutes without agent activity "
                              f"(queue {queue.name!r} unlock_timeout {queue.unlock_timeout})")
            notify(config, session, ticket, UNLOCK_TIMEOUT)
            unlocked.append(ticket.number)
    return unlocked


def pending_times(store, config, now: datetime | None = None) -> list[tuple[str, str]]:
    now = now or datetime.now(timezone.utc)
    done = []
    pending = [s for s, t in config.states.items() if t.startswith("pending")]
    with store.session() as session:
        for ticket in session.execute(select(Ticket).where(
                Ticket.state.in_(pending), Ticket.pending_until.is_not(None),
                Ticket.pending_until <= now)).scalars():
            if config.state_type(ticket.state) == "pending auto":
                target = AUTO_CLOSE.get(ticket.state, "closed successful")
                tickets.set_field(session, ticket, "state", target,
                                  f"pending time {ticket.pending_until:%Y-%m-%d %H:%M} passed")
                ticket.pending_until = None
                tickets.touch(ticket, config)
                done.append((ticket.number, "auto close"))
            elif emit_once(session, ticket.id, PENDING_REMINDER, ticket.pending_until):
                tickets.add_history(session, ticket, PENDING_REMINDER,
                                    f"pending time {ticket.pending_until:%Y-%m-%d %H:%M} "
                                    f"passed: owner reminded")
                notify(config, session, ticket, PENDING_REMINDER)
                done.append((ticket.number, "reminder"))
    return done


def job(app) -> None:
    unlock_timeouts(app.store, app.config)
    pending_times(app.store, app.config)
