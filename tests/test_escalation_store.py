"""Escalation deadlines as stored on tickets: computed on every change, suspended while
pending (by default), gone when closed, listed by `ticketgate escalations`, rebuilt in bulk."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from gateway.cli.escalations import parse_duration, rebuild, upcoming
from gateway.store.models import Ticket
from gateway.tickets import touch
from tests.mails import make_mail

BIN = str(Path(sys.executable).parent / "ticketgate")


def minutes(delta: timedelta) -> float:
    """Calendars work to the whole second; ticket times carry microseconds."""
    return round(delta.total_seconds() / 60, 1)


def get(app, number):
    with app.store.session() as s:
        return s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()


def test_deadlines_follow_the_queue_calendar(app, ingest):
    out = ingest(make_mail(subject="Outage"), queue="Network Outage")   # 24x7 UTC calendar
    t = get(app, out.ticket_number)
    assert minutes(t.first_response_due - t.created) == 30
    assert minutes(t.first_response_notify - t.created) == 15   # 50 %
    assert t.escalation_next == t.first_response_notify


def test_pending_suspends_and_closed_clears(app, ingest):
    out = ingest(make_mail(subject="x"))
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        assert t.escalation_next is not None
        t.state = "pending reminder"
        touch(t, app.config)
        assert t.escalation_next is None and t.solution_due is None
        t.state = "open"
        touch(t, app.config)
        assert t.solution_due is not None
        t.state = "closed successful"
        touch(t, app.config)
        assert t.escalation_next is None and t.first_response_due is None


def test_suspend_pending_can_be_switched_off(conf_dir, make_app):
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + "\nescalation:\n  suspend_pending: no\n")
    app = make_app()
    from gateway.intake import accept
    from gateway.processing import process_inbound

    out = process_inbound(app.store, app.pipeline, accept(app.store, make_mail()).inbound_id)
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        t.state = "pending reminder"
        touch(t, app.config)
        assert t.solution_due is not None


def test_upcoming_lists_breached_and_due(app, ingest):
    a = ingest(make_mail(subject="a"), queue="Network Outage")
    ingest(make_mail(subject="b"), queue="QA")           # QA has no escalation times
    t = get(app, a.ticket_number)
    with app.store.session() as s:
        rows = upcoming(s, app.config, now=t.created + timedelta(minutes=31),
                        due=parse_duration("1h"))
    kinds = {(r["number"], r["kind"]): r for r in rows}
    assert kinds[(a.ticket_number, "first_response")]["breached"] is True
    assert kinds[(a.ticket_number, "update")]["breached"] is False
    assert kinds[(a.ticket_number, "update")]["left"] == 29
    assert all(r["number"] == a.ticket_number for r in rows)


def test_rebuild_after_escalation_change(conf_dir, make_app, ingest, app):
    numbers = [ingest(make_mail(subject=f"r{i}"), queue="Network Outage").ticket_number
               for i in range(30)]
    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace("first_response: 30, first_response_notify: 50",
                                             "first_response: 90, first_response_notify: 50"))
    app2 = make_app()
    seen = []
    assert rebuild(app2.store, app2.config, chunk=7, progress=lambda d, t: seen.append(d)) == 30
    assert seen[-1] == 30 and len(seen) == 5
    for n in numbers:
        t = get(app2, n)
        assert minutes(t.first_response_due - t.created) == 90


def test_escalations_command(conf_dir, db_url, app, ingest):
    ingest(make_mail(subject="cli"), queue="Network Outage")
    r = subprocess.run([BIN, "--conf", str(conf_dir), "--database", db_url, "escalations",
                        "--due", "2h"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "first response" in r.stdout and "Network Outage" in r.stdout
    r = subprocess.run([BIN, "--conf", str(conf_dir), "--database", db_url, "escalations",
                        "--due", "soon"], capture_output=True, text=True)
    assert r.returncode == 64 and "bad duration" in r.stderr
    r = subprocess.run([BIN, "--conf", str(conf_dir), "--database", db_url, "escalations",
                        "rebuild", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and "recomputed 1 ticket" in r.stdout


def test_reopened_ticket_resumes_solution_time(app, ingest):
    """Closed for two working hours, then reopened: the solution deadline moves out by
    exactly those two hours (it resumes, it does not restart from zero)."""
    from gateway.sla.clock import recompute_escalation, solution_clock

    out = ingest(make_mail(subject="resume"), queue="Network Outage")   # 24x7 calendar
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == out.ticket_number)).scalar_one()
        due = t.solution_due
        closed_at = t.created + timedelta(hours=1)
        t.state = "closed successful"
        solution_clock(t, app.config, closed_at)
        recompute_escalation(t, app.config)
        assert t.solution_due is None and t.solution_stopped_at == closed_at
        t.state = "open"
        solution_clock(t, app.config, closed_at + timedelta(hours=2))
        recompute_escalation(t, app.config)
        assert t.solution_paused_minutes == 120
        assert minutes(t.solution_due - due) == 120
