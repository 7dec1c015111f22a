"""gateway.sla.deadlines: deadlines, notify instants, time left and due events."""
from __future__ import annotations

import datetime as dt
from datetime import timezone

import pytest
from zoneinfo import ZoneInfo

from gateway.config.model import EscalationTimes
from gateway.sla import deadlines as esc
from gateway.sla.calendars import Calendar
from gateway.sla.deadlines import (Deadlines, TicketClock, compute_deadlines, due_events,
                                   working_minutes_left)

BER = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
CAL = Calendar.from_config("default", {
    "timezone": "Europe/Berlin",
    "working_hours": {d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["12-25", "12-26", "01-01"],
    "one_time_holidays": ["2026-12-24"],
})


def B(*a) -> dt.datetime:
    return dt.datetime(*a, tzinfo=BER)


MON_9 = B(2026, 11, 23, 9, 0)
ALL = EscalationTimes(first_response=60, first_response_notify=80, update=120,
                      update_notify=50, solution=480, solution_notify=75)


def test_all_six_deadlines_open_ticket():
    d = compute_deadlines(TicketClock(created=MON_9, first_agent_contact=None,
                                      last_contact=None, closed=False), ALL, CAL)
    assert d.first_response == B(2026, 11, 23, 10, 0)
    assert d.first_response_notify == B(2026, 11, 23, 9, 48)     # 80 % of 60 min
    assert d.update == B(2026, 11, 23, 11, 0)                    # from created
    assert d.update_notify == B(2026, 11, 23, 10, 0)
    # Mon 09-12 (180) + 13-17 (240) = 420, then Tue 08:00 + 60
    assert d.solution == B(2026, 11, 24, 9, 0)
    assert d.solution_notify == B(2026, 11, 23, 16, 0)           # 360 min
    assert d.next_due() == d.first_response_notify
    assert all(v.tzinfo is UTC for _, v in d.items())


def test_first_agent_contact_stops_first_response_and_last_contact_moves_update():
    clock = TicketClock(created=MON_9, first_agent_contact=B(2026, 11, 23, 9, 30),
                        last_contact=B(2026, 11, 23, 11, 30), closed=False)
    d = compute_deadlines(clock, ALL, CAL)
    assert d.first_response is None and d.first_response_notify is None
    assert d.update == B(2026, 11, 23, 14, 30)           # 30 before lunch + 90 after
    assert d.update_notify == B(2026, 11, 23, 13, 30)
    assert d.solution == B(2026, 11, 24, 9, 0)           # solution still runs from created
    assert d.next_due() == d.update_notify


@pytest.mark.parametrize("closed,suspended", [(True, False), (False, True), (True, True)])
def test_closed_or_suspended_has_no_deadlines(closed, suspended):
    d = compute_deadlines(TicketClock(MON_9, None, None, closed=closed, suspended=suspended),
                          ALL, CAL)
    assert d == Deadlines()
    assert d.next_due() is None


def test_paused_minutes_push_solution_out():
    clock = TicketClock(MON_9, None, None, False, solution_time_paused_minutes=60)
    d = compute_deadlines(clock, ALL, CAL)
    assert d.solution == B(2026, 11, 24, 10, 0)
    assert d.solution_notify == B(2026, 11, 23, 17, 0)   # 360 + 60 = 420: end of Monday
    assert d.first_response == B(2026, 11, 23, 10, 0)    # other clocks unaffected
    with pytest.raises(ValueError, match="solution_time_paused_minutes"):
        compute_deadlines(TicketClock(MON_9, None, None, False,
                                      solution_time_paused_minutes=-5), ALL, CAL)


def test_off_timers_and_notify_off():
    times = EscalationTimes(solution=60)
    d = compute_deadlines(TicketClock(MON_9, None, None, False), times, CAL)
    assert d == Deadlines(solution=B(2026, 11, 23, 10, 0))


def test_created_on_holiday_late_evening():
    clock = TicketClock(created=B(2026, 12, 25, 23, 59), first_agent_contact=None,
                        last_contact=None, closed=False)
    d = compute_deadlines(clock, EscalationTimes(first_response=60, first_response_notify=50), CAL)
    assert d.first_response == B(2026, 12, 28, 9, 0)
    assert d.first_response_notify == B(2026, 12, 28, 8, 30)


def test_solution_across_year_boundary():
    clock = TicketClock(created=B(2026, 12, 30, 16, 0), first_agent_contact=None,
                        last_contact=None, closed=False)
    d = compute_deadlines(clock, EscalationTimes(solution=600), CAL)
    assert d.solution == B(2027, 1, 4, 9, 0)


def test_notify_percent_rounds_up_to_the_second():
    d = compute_deadlines(TicketClock(MON_9, None, None, False),
                          EscalationTimes(first_response=1, first_response_notify=33), CAL)
    assert d.first_response_notify == B(2026, 11, 23, 9, 0, 20)   # 19.8 s -> 20 s
    d = compute_deadlines(TicketClock(MON_9, None, None, False),
                          EscalationTimes(first_response=30, first_response_notify=100), CAL)
    assert d.first_response_notify == d.first_response


def test_escalation_times_from_config():
    assert EscalationTimes.from_config(None) == EscalationTimes()
    assert EscalationTimes.from_config({"first_response": 60, "update": None}) == \
        EscalationTimes(first_response=60)


@pytest.mark.parametrize("data,message", [
    ({"first_responce": 60}, "first_responce: unknown escalation key"),
    ({"solution": -1}, "solution: must not be negative"),
    ({"update": "60"}, "update: expected a whole number"),
    ({"update": True}, "update: expected a whole number"),
    ({"update": 1.5}, "update: expected a whole number"),
    ({"update": 60, "update_notify": 150}, "update_notify: a percentage 0-100"),
    ({"solution_notify": 80}, "solution_notify: set to 80% but solution is off"),
    ([60], "escalation: expected a mapping"),
])
def test_escalation_times_errors(data, message):
    with pytest.raises(ValueError) as exc:
        EscalationTimes.from_config(data)
    assert message in str(exc.value)


@pytest.mark.parametrize("deadline,now,left", [
    (B(2026, 11, 23, 10, 0), B(2026, 11, 23, 9, 0), 60),
    (B(2026, 11, 23, 10, 0), B(2026, 11, 23, 9, 59, 30), 0),       # 30 s left
    (B(2026, 11, 23, 10, 0), B(2026, 11, 23, 10, 0), 0),
    (B(2026, 11, 23, 10, 0), B(2026, 11, 23, 10, 0, 30), -1),      # 30 s late
    (B(2026, 11, 23, 10, 0), B(2026, 11, 23, 14, 0), -180),        # lunch not counted
    (B(2026, 11, 27, 16, 30), B(2026, 11, 30, 9, 0), -90),         # over a weekend
    (B(2026, 11, 27, 17, 0), B(2026, 11, 27, 20, 0), 0),           # breached, no work since
    (B(2026, 11, 30, 9, 0), B(2026, 11, 28, 10, 0), 60),           # Saturday: clock stands
])
def test_working_minutes_left(deadline, now, left):
    assert working_minutes_left(deadline, now, CAL) == left


def test_event_names():
    assert esc.EscalationResponseTimeNotifyBefore == "EscalationResponseTimeNotifyBefore"
    assert esc.EVENTS == {
        "first_response_notify": "EscalationResponseTimeNotifyBefore",
        "first_response": "EscalationResponseTimeStart",
        "update_notify": "EscalationUpdateTimeNotifyBefore",
        "update": "EscalationUpdateTimeStart",
        "solution_notify": "EscalationSolutionTimeNotifyBefore",
        "solution": "EscalationSolutionTimeStart",
    }


def test_due_events_window():
    d = compute_deadlines(TicketClock(MON_9, None, None, False), ALL, CAL)
    got = due_events(d, since=MON_9, now=B(2026, 11, 23, 10, 0))
    assert got == [
        ("EscalationResponseTimeNotifyBefore", "first_response_notify", B(2026, 11, 23, 9, 48)),
        # same instant: ties follow KINDS order (first response before update)
        ("EscalationResponseTimeStart", "first_response", B(2026, 11, 23, 10, 0)),
        ("EscalationUpdateTimeNotifyBefore", "update_notify", B(2026, 11, 23, 10, 0)),
    ]
    # lower bound exclusive, upper inclusive
    assert [e for e, _, _ in due_events(d, B(2026, 11, 23, 10, 0), B(2026, 11, 23, 11, 0))] == \
        ["EscalationUpdateTimeStart"]
    assert due_events(d, B(2026, 11, 23, 11, 0), B(2026, 11, 23, 15, 59)) == []
    assert len(due_events(d, None, B(2026, 12, 1))) == 6
    assert due_events(Deadlines(), None, B(2030, 1, 1)) == []
