"""gateway.sla.clock: one calendar_for (SLA, else queue, else default) and one rule for what
stops the escalation clock, used by the ticket store, the solution clock and rebuild."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from gateway.app import load_config
from gateway.config.core_keys import DEFAULT_STATES
from gateway.cli.escalations import rebuild, upcoming
from gateway.sla import clock
from gateway.sla.clock import (RUNNING, STOPPED, SUSPENDED, calendar_for, clock_state,
                               recompute_escalation, sla_for, solution_clock, stopped_states,
                               stops_clock)
from gateway.sla.deadlines import EscalationResponseTimeStart
from gateway.store.models import Ticket
from gateway.tickets import touch
from notifier import escalation_watch
from tests.mails import make_mail

WEEKEND_DESK = """
weekend-desk:
  timezone: Europe/London
  working_hours:
    sat: ["09:00-18:00"]
    sun: ["09:00-18:00"]
"""
MORE_SLAS = """
  - name: Platinum
    match: {customer_id: '^Initech$'}
    calendar: weekend-desk
    escalation: {first_response: 15}
  - name: Silver
    match: {customer_id: '^Umbrella$'}
    escalation: {first_response: 120}
"""
# The default states plus one of each state type named unlike its type (the rule is by type).
CUSTOM_STATES = [("fresh", "new"), ("in progress", "open"),
                 ("waiting for customer", "pending reminder"), ("auto close soon", "pending auto"),
                 ("resolved", "closed"), ("folded in", "merged"), ("deleted", "removed")]
STATES = "\nstates:\n" + "".join(f"  - {{name: {name}, type: {type_}}}\n"
                                 for name, type_ in DEFAULT_STATES + CUSTOM_STATES)


@pytest.fixture
def config(conf_dir):
    with open(conf_dir / "calendars.yaml", "a") as f:
        f.write(WEEKEND_DESK)
    with open(conf_dir / "sla.yaml", "a") as f:
        f.write(MORE_SLAS)
    return load_config(conf_dir)


def sla_named(config, name):
    return next(s for s in config.slas if s.name == name)


def test_sla_calendar_beats_queue_calendar_beats_default(config):
    platinum, silver = sla_named(config, "Platinum"), sla_named(config, "Silver")
    assert config.queues["Network Outage"].calendar == "around-the-clock"
    assert calendar_for(config, "Network Outage", platinum).name == "weekend-desk"
    assert calendar_for(config, "Network Outage", silver).name == "around-the-clock"  # no own
    assert calendar_for(config, "Network Outage").name == "around-the-clock"
    assert calendar_for(config, "Hardware").name == "default"     # queue names no calendar
    assert calendar_for(config, "VIP", platinum).name == "weekend-desk"


def test_unknown_queue_counts_on_the_default_calendar(config):
    assert calendar_for(config, "No Such Queue").name == "default"
    assert calendar_for(config, None).name == "default"
    assert calendar_for(config, "No Such Queue", sla_named(config, "Platinum")).name == \
        "weekend-desk"


def test_sla_for_matches_fields_and_queue_and_honours_a_pin(config):
    assert sla_for(config, "Unassigned", {"customer_id": "ACME"}).name == "Gold"
    assert sla_for(config, "Unassigned", {"customer_id": "Initech"}).name == "Platinum"
    assert sla_for(config, "Unassigned", {"customer_id": "Nobody"}) is None
    assert sla_for(config, "Unassigned", {"customer_id": "ACME"}, {"SLA": "Silver"}).name == \
        "Silver"


def write_states(conf_dir, suspend_pending: bool):
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + STATES +
                    f"\nescalation:\n  suspend_pending: {'yes' if suspend_pending else 'no'}\n")
    return load_config(conf_dir)


@pytest.mark.parametrize("state,suspending,not_suspending", [
    ("fresh", RUNNING, RUNNING),
    ("in progress", RUNNING, RUNNING),
    ("waiting for customer", SUSPENDED, RUNNING),
    ("auto close soon", SUSPENDED, RUNNING),
    ("resolved", STOPPED, STOPPED),
    ("folded in", STOPPED, STOPPED),
    ("deleted", STOPPED, STOPPED),
    ("no such state", RUNNING, RUNNING),           # unknown states count as open
])
@pytest.mark.parametrize("suspend_pending", [True, False])
def test_clock_state_by_state_type(conf_dir, state, suspending, not_suspending,
                                   suspend_pending):
    config = write_states(conf_dir, suspend_pending)
    expected = suspending if suspend_pending else not_suspending
    assert clock_state(config, state) == expected
    assert stops_clock(config, state) is (expected != RUNNING)


def test_suspend_pending_defaults_to_on(config):
    assert clock_state(config, "pending reminder") == SUSPENDED
    assert clock_state(config, "pending auto close-") == SUSPENDED
    assert stops_clock(config, "open") is False


def test_merged_stops_the_clock_but_is_not_closed_for_follow_ups(config):
    """The two meanings of 'closed' differ on purpose: a follow-up to a merged ticket goes to
    the ticket it was merged into (not reopened, not rejected); the merged ticket never
    escalates."""
    assert stops_clock(config, "merged") is True and config.is_closed("merged") is False
    assert stops_clock(config, "removed") is True and config.is_closed("removed") is True
    assert stops_clock(config, "pending reminder") is True
    assert config.is_closed("pending reminder") is False


@pytest.mark.parametrize("suspend_pending", [True, False])
def test_stopped_states_are_those_stopped_for_good(conf_dir, suspend_pending):
    """rebuild skips these; pending tickets are recomputed (their deadlines must clear or come
    back when suspend_pending changes)."""
    config = write_states(conf_dir, suspend_pending)
    assert stopped_states(config) == ["closed successful", "closed unsuccessful", "merged",
                                      "removed", "resolved", "folded in", "deleted"]


def test_store_solution_clock_and_rebuild_ask_the_one_rule(app, ingest, monkeypatch):
    """Change what clock_state says and every user follows: touch (deadline columns), the
    solution clock and `escalations rebuild`. A call site with its own list of states fails."""
    out = ingest(make_mail(subject="rule"), queue="Network Outage")
    monkeypatch.setattr(clock, "clock_state",
                        lambda config, state: STOPPED if state == "open" else RUNNING)
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        t.state = "open"
        touch(t, app.config)
        assert t.escalation_next is None and t.solution_due is None
        assert t.solution_stopped_at is not None
    assert rebuild(app.store, app.config) == 0
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        t.state = "closed successful"          # RUNNING for the patched rule
        touch(t, app.config)
        assert t.solution_due is not None and t.solution_stopped_at is None
    assert rebuild(app.store, app.config) == 1


SATURDAY = datetime(2030, 1, 5, 10, 0, tzinfo=timezone.utc)   # no work on the default calendar


def gold_ticket_on_saturday(app, ingest):
    """A ticket in Unassigned (default calendar: Berlin office hours) for customer ACME, so SLA
    Gold applies: first response 60 minutes on the around-the-clock calendar."""
    out = ingest(make_mail(subject="gold"))
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert t.queue == "Unassigned"
        t.created = t.last_contact = SATURDAY
        t.customer_id = "ACME"
        touch(t, app.config)
        assert t.first_response_due == SATURDAY + timedelta(minutes=60)
    return out.ticket_number


def test_escalations_list_counts_time_left_on_the_sla_calendar(app, ingest):
    """`ticketgate escalations` and the escalation scan agree for an SLA ticket: minutes left
    run down on the SLA's calendar (not the queue's) and reach zero when the scan fires."""
    number = gold_ticket_on_saturday(app, ingest)
    due = SATURDAY + timedelta(minutes=60)

    def first_response(now):
        with app.store.session() as s:
            rows = upcoming(s, app.config, now=now)
        return next(r for r in rows if r["number"] == number and r["kind"] == "first_response")

    assert first_response(due - timedelta(minutes=30))["left"] == 30
    row = first_response(due - timedelta(minutes=1))
    assert row["left"] == 1 and row["breached"] is False
    assert (number, EscalationResponseTimeStart) not in \
        escalation_watch.scan(app.store, app.config, now=due - timedelta(minutes=1))
    assert first_response(due)["breached"] is True
    assert (number, EscalationResponseTimeStart) in \
        escalation_watch.scan(app.store, app.config, now=due)


def test_solution_time_paused_counts_on_the_sla_calendar(app, ingest):
    """Closed for two hours on a Saturday: Gold's around-the-clock calendar counts them, so the
    solution deadline (also on that calendar) moves out by 120 minutes; the queue's office
    hours would have counted 0 and eaten two hours of the ticket's solution time."""
    number = gold_ticket_on_saturday(app, ingest)
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        due = t.solution_due
        assert due == SATURDAY + timedelta(minutes=1440)
        t.state = "closed successful"
        solution_clock(t, app.config, SATURDAY + timedelta(hours=1))
        recompute_escalation(t, app.config)
        t.state = "open"
        solution_clock(t, app.config, SATURDAY + timedelta(hours=3))
        recompute_escalation(t, app.config)
        assert t.solution_paused_minutes == 120
        assert t.solution_due == due + timedelta(minutes=120)
