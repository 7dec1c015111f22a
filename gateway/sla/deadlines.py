"""Escalation deadlines (OTRS model), pure: no database, no clock.

``compute_deadlines`` turns what the store knows about a ticket (:class:`TicketClock`)
and a queue's :class:`EscalationTimes` into UTC deadlines on a business-hours
:class:`~gateway.sla.calendars.Calendar`. ``due_events`` lists the escalation events
whose instant fell into a polling window ``(since, now]``.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from gateway.config.model import EscalationTimes
from gateway.sla.calendars import Calendar, _to_epoch

__all__ = [
    "TicketClock", "Deadlines", "compute_deadlines",
    "working_minutes_left", "due_events", "EVENTS", "KINDS",
    "EscalationResponseTimeNotifyBefore", "EscalationResponseTimeStart",
    "EscalationUpdateTimeNotifyBefore", "EscalationUpdateTimeStart",
    "EscalationSolutionTimeNotifyBefore", "EscalationSolutionTimeStart",
]

EscalationResponseTimeNotifyBefore = "EscalationResponseTimeNotifyBefore"
EscalationResponseTimeStart = "EscalationResponseTimeStart"
EscalationUpdateTimeNotifyBefore = "EscalationUpdateTimeNotifyBefore"
EscalationUpdateTimeStart = "EscalationUpdateTimeStart"
EscalationSolutionTimeNotifyBefore = "EscalationSolutionTimeNotifyBefore"
EscalationSolutionTimeStart = "EscalationSolutionTimeStart"

# deadline kind (Deadlines field) -> event fired when its instant is reached
EVENTS: dict[str, str] = {
    "first_response_notify": EscalationResponseTimeNotifyBefore,
    "first_response": EscalationResponseTimeStart,
    "update_notify": EscalationUpdateTimeNotifyBefore,
    "update": EscalationUpdateTimeStart,
    "solution_notify": EscalationSolutionTimeNotifyBefore,
    "solution": EscalationSolutionTimeStart,
}
KINDS = tuple(EVENTS)


@dataclass
class TicketClock:
    """What the store knows about a ticket's timers.

    ``solution_time_paused_minutes``: working minutes during which the solution clock
    was stopped (e.g. time spent in a suspending pending state, or between close and
    reopen). They push the solution deadline out: ``add(created, solution + paused)``.
    """
    created: _dt.datetime
    first_agent_contact: _dt.datetime | None = None
    last_contact: _dt.datetime | None = None
    closed: bool = False
    suspended: bool = False
    solution_time_paused_minutes: int = 0


@dataclass(frozen=True)
class Deadlines:
    first_response: _dt.datetime | None = None
    first_response_notify: _dt.datetime | None = None
    update: _dt.datetime | None = None
    update_notify: _dt.datetime | None = None
    solution: _dt.datetime | None = None
    solution_notify: _dt.datetime | None = None

    def items(self) -> list[tuple[str, _dt.datetime]]:
        return [(k, getattr(self, k)) for k in KINDS if getattr(self, k) is not None]

    def next_due(self) -> _dt.datetime | None:
        """Earliest of the six instants, or None when nothing is scheduled."""
        got = [v for _, v in self.items()]
        return min(got) if got else None


def _notify_at(cal: Calendar, start: _dt.datetime, minutes: int, percent: int,
               offset_minutes: int = 0) -> _dt.datetime | None:
    """First instant at which at least ``percent``% of ``minutes`` have elapsed."""
    if not percent:
        return None
    seconds = -(-minutes * 60 * percent // 100)          # ceil to whole seconds
    return cal.add_seconds(start, seconds + offset_minutes * 60)


def compute_deadlines(clock: TicketClock, times: EscalationTimes, cal: Calendar) -> Deadlines:
    """Deadlines of one ticket (OTRS semantics).

    * closed or suspended: no deadlines at all;
    * first response: ``add(created, first_response)`` until the first agent contact;
    * update: ``add(last_contact or created, update)``;
    * solution: ``add(created, solution + solution_time_paused_minutes)``;
    * ``*_notify``: the instant when ``notify``% of the time has elapsed, same start.
    """
    if clock.closed or clock.suspended:
        return Deadlines()
    paused = clock.solution_time_paused_minutes
    if isinstance(paused, bool) or not isinstance(paused, int) or paused < 0:
        raise ValueError(f"solution_time_paused_minutes: expected minutes >= 0, got {paused!r}")
    out: dict[str, _dt.datetime | None] = {}
    if times.first_response and clock.first_agent_contact is None:
        out["first_response"] = cal.add(clock.created, times.first_response)
        out["first_response_notify"] = _notify_at(
            cal, clock.created, times.first_response, times.first_response_notify)
    if times.update:
        start = clock.last_contact or clock.created
        out["update"] = cal.add(start, times.update)
        out["update_notify"] = _notify_at(cal, start, times.update, times.update_notify)
    if times.solution:
        out["solution"] = cal.add(clock.created, times.solution + paused)
        out["solution_notify"] = _notify_at(
            cal, clock.created, times.solution, times.solution_notify, paused)
    return Deadlines(**out)


def working_minutes_left(deadline: _dt.datetime, now: _dt.datetime, cal: Calendar) -> int:
    """Signed working minutes from ``now`` to ``deadline``, floored.

    Positive before the deadline, negative after it (30 working seconds late is -1).
    Outside working time the value does not move, so 'breached' is ``now >= deadline``,
    not ``left <= 0``.
    """
    if _to_epoch(now) <= _to_epoch(deadline):
        return cal.between_seconds(now, deadline) // 60
    return -cal.between_seconds(deadline, now) // 60


def due_events(deadlines: Deadlines, since: _dt.datetime | None,
               now: _dt.datetime) -> list[tuple[str, str, _dt.datetime]]:
    """``(event_name, deadline_kind, instant)`` for each instant in ``(since, now]``,
    ordered by instant; ties in ``KINDS`` order (first response, update, solution;
    notify before start within each). ``since=None`` means no lower bound."""
    hi = _to_epoch(now)
    lo = None if since is None else _to_epoch(since)
    out = []
    for order, (kind, instant) in enumerate(deadlines.items()):
        u = _to_epoch(instant)
        if (lo is None or u > lo) and u <= hi:
            out.append((u, order, EVENTS[kind], kind, instant))
    out.sort(key=lambda t: (t[0], t[1]))
    return [(ev, kind, inst) for _, _, ev, kind, inst in out]
