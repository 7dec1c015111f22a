"""The escalation clock of a stored ticket: its deadline columns, and the solution clock that
stops while the ticket is closed (or suspended in pending) and resumes on reopening."""
from __future__ import annotations

from datetime import datetime

from gateway.config.model import Config
from gateway.sla import slas
from gateway.sla.deadlines import TicketClock, compute_deadlines
from gateway.store.models import Ticket


DEADLINE_COLUMNS = ("first_response_due", "first_response_notify", "update_due",
                    "update_notify", "solution_due", "solution_notify", "escalation_next")


def deadlines_for(config: Config, queue_name: str, state: str, created: datetime,
                  first_agent_contact: datetime | None, last_contact: datetime | None,
                  fields: dict | None = None, dynamic_fields: dict | None = None,
                  paused_minutes: int = 0) -> dict:
    """The deadline columns of a ticket with these values (all None when it cannot escalate).

    Times come from the first matching SLA (gateway.sla.slas; ``fields`` has type, customer_id,
    customer_user, priority), else from the queue. Closed, removed and merged tickets have no
    deadlines; pending ones neither while ``escalation.suspend_pending`` is on (default)."""
    out = dict.fromkeys(DEADLINE_COLUMNS)
    queue = config.queues.get(queue_name)
    if queue is None:
        return out
    times, calendar_name = queue.escalation, queue.calendar
    sla = slas.find(config, {**(fields or {}), "queue": queue_name}, dynamic_fields)
    if sla is not None:
        times, calendar_name = sla.escalation, sla.calendar or queue.calendar
    if times is None:
        return out
    calendar = config.calendars.get(calendar_name) or config.calendars.get("default")
    state_type = config.state_type(state)
    suspend = bool(config.escalation.get("suspend_pending", True))
    clock = TicketClock(created=created, first_agent_contact=first_agent_contact,
                        last_contact=last_contact,
                        closed=state_type in ("closed", "removed", "merged"),
                        suspended=suspend and state_type.startswith("pending"),
                        solution_time_paused_minutes=max(int(paused_minutes or 0), 0))
    deadlines = compute_deadlines(clock, times, calendar)
    for kind in ("first_response", "update", "solution"):
        out[f"{kind}_due"] = getattr(deadlines, kind)
        out[f"{kind}_notify"] = getattr(deadlines, f"{kind}_notify")
    out["escalation_next"] = deadlines.next_due()
    return out


def sla_fields(ticket) -> dict:
    return {"type": ticket.type, "customer_id": ticket.customer_id,
            "customer_user": ticket.customer_user, "priority": ticket.priority}


def recompute_escalation(ticket: Ticket, config: Config) -> None:
    """Store the three deadlines and their notify instants on the ticket (indexed)."""
    values = deadlines_for(config, ticket.queue, ticket.state, ticket.created,
                           ticket.first_agent_contact, ticket.last_contact, sla_fields(ticket),
                           ticket.dynamic_fields, ticket.solution_paused_minutes)
    for column, value in values.items():
        setattr(ticket, column, value)


def solution_clock(ticket: Ticket, config: Config, now: datetime) -> None:
    """Stop the solution clock when the ticket closes (or is suspended in pending), and on
    reopening add the working minutes it was stopped, so solution time resumes, not restarts."""
    state_type = config.state_type(ticket.state)
    stopped = state_type in ("closed", "removed", "merged") or (
        state_type.startswith("pending") and config.escalation.get("suspend_pending", True))
    if stopped and ticket.solution_stopped_at is None:
        ticket.solution_stopped_at = now
    elif not stopped and ticket.solution_stopped_at is not None:
        queue = config.queues.get(ticket.queue)
        calendar = config.calendars.get(queue.calendar if queue else "default") or \
            config.calendars["default"]
        ticket.solution_paused_minutes = (ticket.solution_paused_minutes or 0) + \
            calendar.between(ticket.solution_stopped_at, now)
        ticket.solution_stopped_at = None
