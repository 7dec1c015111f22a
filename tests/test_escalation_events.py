"""The escalation scan emits each event (notify-before, breach) exactly once at the right
instant: a fake clock (``now`` passed in), a restart, and two daemons on one database."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.app import open_app
from gateway.store.models import Ticket
from notifier import escalation_watch
from gateway.store.models import EscalationEvent
from tests.mails import make_mail
from tests.test_autoresponse import ingest_into
from tests.test_notifications import notified

NOTIFY, START = "EscalationResponseTimeNotifyBefore", "EscalationResponseTimeStart"


def outage_ticket(app):
    """Network Outage: around the clock, first response 30 min, warning at 50 % (15 min)."""
    out = ingest_into(app, make_mail(subject="WAN down", to="outage@example.com"))
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        return t.number, t.created, t.first_response_notify, t.first_response_due


def test_events_fire_once_at_their_instant(app):
    number, created, notify_at, due = outage_ticket(app)
    assert abs(notify_at - created - timedelta(minutes=15)) < timedelta(minutes=1)
    assert due - notify_at == timedelta(minutes=15)
    scan = escalation_watch.scan
    assert scan(app.store, app.config, now=notify_at - timedelta(seconds=1)) == []
    assert scan(app.store, app.config, now=notify_at) == [(number, NOTIFY)]
    assert scan(app.store, app.config, now=notify_at + timedelta(minutes=1)) == []
    assert scan(app.store, app.config, now=due - timedelta(seconds=1)) == []
    assert scan(app.store, app.config, now=due + timedelta(seconds=30)) == [(number, START)]
    assert scan(app.store, app.config, now=due + timedelta(minutes=5)) == []
    assert {r for r, _ in notified(app, NOTIFY)} == {"nia.smith@example.com",
                                                     "max.lee@example.com"}
    assert len(notified(app, START)) == 2
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert [h.type for h in t.history if h.type.startswith("Escalation")] == [NOTIFY, START]


def test_late_scan_emits_every_missed_event_once_in_order(app):
    number, created, notify_at, due = outage_ticket(app)
    later = due + timedelta(minutes=5)     # before the update time (60 min)
    assert escalation_watch.scan(app.store, app.config, now=later) == \
        [(number, NOTIFY), (number, START)]
    assert escalation_watch.scan(app.store, app.config, now=later) == []


def test_restart_and_second_daemon_do_not_repeat(app, conf_dir, db_url):
    number, created, notify_at, due = outage_ticket(app)
    assert escalation_watch.scan(app.store, app.config, now=notify_at) == [(number, NOTIFY)]
    other = open_app(conf_dir, database=db_url)          # a restart / a second daemon
    try:
        with other.store.session() as s:   # even if the ticket's escalation_next is stale
            s.execute(select(Ticket).where(Ticket.number == number)).scalar_one() \
                .escalation_next = notify_at
        assert escalation_watch.scan(other.store, other.config, now=notify_at) == []
        assert escalation_watch.scan(other.store, other.config, now=due) == [(number, START)]
        assert escalation_watch.scan(app.store, app.config, now=due) == []
    finally:
        other.store.close()
    with app.store.session() as s:
        assert s.execute(select(EscalationEvent.event).order_by(EscalationEvent.id)) \
            .scalars().all() == [NOTIFY, START]
    assert len(notified(app, NOTIFY)) == 2


def test_job_runs_with_an_app(app):
    escalation_watch.job(app)    # nothing due yet: no error, no event
    with app.store.session() as s:
        assert s.execute(select(EscalationEvent)).first() is None
