"""The escalation clock of a stored ticket: which calendar it counts in, which states stop it,
its deadline columns, and the solution time that stops and resumes around a close or pending."""
from __future__ import annotations

from datetime import datetime

from gateway.config.model import Config
from gateway.sla import slas
from gateway.sla.calendars import Calendar
from gateway.sla.deadlines import TicketClock, compute_deadlines
from gateway.store.models import Ticket

# What the clock of a ticket in some state does (clock_state).
RUNNING = "running"        # new, open, and pending while escalation.suspend_pending is off
SUSPENDED = "suspended"    # pending reminder / pending auto while suspend_pending is on
STOPPED = "stopped"        # closed, removed or merged: nothing is due any more
STOPPED_STATE_TYPES = ("closed", "removed", "merged")

DEADLINE_COLUMNS = ("first_response_due", "first_response_notify", "update_due",
                    "update_notify", "solution_due", "solution_notify", "escalation_next")


def calendar_for(config: Config, queue_name: str | None, sla: slas.SLA | None = None) -> Calendar:
    """The calendar a ticket's working time counts in: the SLA's calendar, else the queue's,
    else ``default`` (also for a queue that no longer exists)."""
    queue = config.queues.get(queue_name) if queue_name else None
    for name in (sla.calendar if sla else None, queue.calendar if queue else None):
        if name and name in config.calendars:
            return config.calendars[name]
    return config.calendars["default"]


def clock_state(config: Config, state: str) -> str:
    """RUNNING, SUSPENDED or STOPPED for a ticket in ``state``.

    Stopped: state types closed, removed and merged. This is wider than
    ``Config.is_closed`` (closed, removed), which answers the follow-up question "does a mail
    to this ticket reopen it?": mail to a merged ticket goes to the ticket it was merged into,
    but a merged ticket itself must never escalate. Suspended: the pending state types while
    ``escalation.suspend_pending`` is on (the default); off, pending tickets keep escalating.
    Unknown states count as open (``Config.state_type``)."""
    state_type = config.state_type(state)
    if state_type in STOPPED_STATE_TYPES:
        return STOPPED
    if state_type.startswith("pending") and config.escalation["suspend_pending"]:
        return SUSPENDED
    return RUNNING


def stops_clock(config: Config, state: str) -> bool:
    """True when a ticket in ``state`` has no deadlines and its solution time stands still."""
    return clock_state(config, state) != RUNNING


def stopped_states(config: Config) -> list[str]:
    """The configured states whose clock is stopped for good (not merely suspended)."""
    return [name for name in config.states if clock_state(config, name) == STOPPED]


def sla_fields(ticket) -> dict:
    """The ticket values an SLA can match on, besides the queue."""
    return {"type": ticket.type, "customer_id": ticket.customer_id,
            "customer_user": ticket.customer_user, "priority": ticket.priority}


def sla_for(config: Config, queue_name: str, fields: dict | None = None,
            dynamic_fields: dict | None = None) -> slas.SLA | None:
    """The SLA of a ticket in this queue with these fields (a pinned one first), or None."""
    return slas.find(config, {**(fields or {}), "queue": queue_name}, dynamic_fields)


def ticket_calendar(config: Config, ticket) -> Calendar:
    """``calendar_for`` a stored ticket (or a row with its SLA fields) and the SLA it gets: the
    calendar its deadlines are computed on, so time left and paused time count there too."""
    return calendar_for(config, ticket.queue,
                        sla_for(config, ticket.queue, sla_fields(ticket), ticket.dynamic_fields))


def deadlines_for(config: Config, queue_name: str, state: str, created: datetime,
                  first_agent_contact: datetime | None, last_contact: datetime | None,
                  fields: dict | None = None, dynamic_fields: dict | None = None,
                  paused_minutes: int = 0) -> dict:
    """The deadline columns of a ticket with these values (all None when it cannot escalate).

    Times come from the first matching SLA (gateway.sla.slas; ``fields`` has type, customer_id,
    customer_user, priority), else from the queue; they count in ``calendar_for``. A ticket
    whose state stops the clock (``clock_state``) has no deadlines."""
    out = dict.fromkeys(DEADLINE_COLUMNS)
    queue = config.queues.get(queue_name)
    if queue is None:
        return out
    times = queue.escalation
    sla = sla_for(config, queue_name, fields, dynamic_fields)
    if sla is not None:
        times = sla.escalation
    if times is None:
        return out
    state_now = clock_state(config, state)
    clock = TicketClock(created=created, first_agent_contact=first_agent_contact,
                        last_contact=last_contact, closed=state_now == STOPPED,
                        suspended=state_now == SUSPENDED,
                        solution_time_paused_minutes=max(int(paused_minutes or 0), 0))
    deadlines = compute_deadlines(clock, times, calendar_for(config, queue_name, sla))
    for kind in ("first_response", "update", "solution"):
        out[f"{kind}_due"] = getattr(deadlines, kind)
        out[f"{kind}_notify"] = getattr(deadlines, f"{kind}_notify")
    out["escalation_next"] = deadlines.next_due()
    return out


def recompute_escalation(ticket: Ticket, config: Config) -> None:
    """Store the three deadlines and their notify instants on the ticket (indexed)."""
    values = deadlines_for(config, ticket.queue, ticket.state, ticket.created,
                           ticket.first_agent_contact, ticket.last_contact, sla_fields(ticket),
                           ticket.dynamic_fields, ticket.solution_paused_minutes)
    for column, value in values.items():
        setattr(ticket, column, value)


def solution_clock(ticket: Ticket, config: Config, now: datetime) -> None:
    """Stop the solution clock when the ticket's state stops it (``stops_clock``), and on
    reopening add the working minutes it was stopped, so solution time resumes, not restarts."""
    stopped = stops_clock(config, ticket.state)
    if stopped and ticket.solution_stopped_at is None:
        ticket.solution_stopped_at = now
    elif not stopped and ticket.solution_stopped_at is not None:
        calendar = ticket_calendar(config, ticket)
        ticket.solution_paused_minutes = (ticket.solution_paused_minutes or 0) + \
            calendar.between(ticket.solution_stopped_at, now)
        ticket.solution_stopped_at = None
