"""Agent notifications: who gets which event (group rights, owner, responsible, opt-out),
follow-ups on locked tickets to the owner only, rejected follow-ups, and the time-driven
ones: unlock timeout, pending reminder (once) and pending auto close."""
from __future__ import annotations

import email
from datetime import timedelta
from email import policy

from sqlalchemy import select

from gateway import tickets
from gateway.store.models import Ticket, utcnow
from notifier import timers
from notifier.outbound import delivery
from gateway.store.models import OutboundMail
from tests.mails import make_mail
from tests.test_autoresponse import ingest_into, use_sink

ALL = {"jane.doe@example.com", "tom.moore@example.com", "nia.smith@example.com",
       "max.lee@example.com"}


def notified(app, event=None) -> list[tuple[str, str]]:
    """(recipient, event) of queued notifications, in order."""
    with app.store.session() as s:
        rows = s.execute(select(OutboundMail).where(OutboundMail.kind == "notification")
                         .order_by(OutboundMail.id)).scalars()
        out = []
        for row in rows:
            msg = email.message_from_bytes(row.raw, policy=policy.default)
            if event is None or msg["X-Ticketgate-Event"] == event:
                out.append((row.rcpt_to[0], msg["X-Ticketgate-Event"]))
        return out


def edit(app, number, **fields):
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        for k, v in fields.items():
            setattr(t, k, v)
        return t.id


def test_new_ticket_goes_to_agents_with_rights_on_the_queue_group(app):
    ingest_into(app, make_mail(subject="Cannot log in"))            # Unassigned: Tier 1
    assert {r for r, _ in notified(app, "NewTicket")} == ALL
    ingest_into(app, make_mail(subject="Broken", to="hardware@example.com"))  # Tier 2
    hardware = [r for r, _ in notified(app, "NewTicket")][4:]
    assert set(hardware) == ALL - {"jane.doe@example.com"}     # Tier 1 has no ro on Tier 2


def test_opt_out_and_no_notification_for_looping_mail(conf_dir, make_app):
    path = conf_dir / "agents.yaml"
    path.write_text(path.read_text().replace(
        "    email: jane.doe@example.com\n",
        "    email: jane.doe@example.com\n    notifications: {NewTicket: no}\n"))
    app = make_app()
    ingest_into(app, make_mail(subject="Cannot log in"))
    assert "jane.doe@example.com" not in {r for r, _ in notified(app)}
    before = len(notified(app))
    ingest_into(app, make_mail(subject="hi", headers={"X-Ticketgate-Loop": "elsewhere"}))
    assert len(notified(app)) == before


def test_follow_up_on_locked_ticket_goes_to_the_owner_only(app):
    first = ingest_into(app, make_mail(subject="Cannot log in"))
    edit(app, first.ticket_number, locked=True, owner="tmoore")
    ingest_into(app, make_mail(subject=f"Re: [Ticket#{first.ticket_number}] more"))
    assert notified(app, "LockedFollowUp") == [("tom.moore@example.com", "LockedFollowUp")]
    assert notified(app, "FollowUp") == []
    edit(app, first.ticket_number, locked=False, responsible="mlee")
    ingest_into(app, make_mail(subject=f"Re: [Ticket#{first.ticket_number}] again"))
    assert {r for r, _ in notified(app, "FollowUp")} == ALL


def test_rejected_follow_up_is_notified(app):
    first = ingest_into(app, make_mail(subject="40 laptops", to="purchasing@example.com"))
    edit(app, first.ticket_number, state="closed successful")
    ingest_into(app, make_mail(subject=f"Re: [Ticket#{first.ticket_number}] and 2 more"))
    assert {r for r, _ in notified(app, "FollowUpRejected")} == {"max.lee@example.com"}


def test_notification_mail_is_well_formed_and_delivered(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    app = make_app()
    out = ingest_into(app, make_mail(subject="Cannot log in"))
    delivery.drain(app.store, app.config)
    [env] = [e for e in handler.envelopes if e.rcpt_tos == ["max.lee@example.com"]]
    msg = email.message_from_bytes(env.content, policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert f"[Ticket#{out.ticket_number}]" in msg["Subject"]
    assert msg["X-Ticketgate-Loop"] == "helpdesk.example.com"
    assert "Cannot log in" in msg.get_content()


def test_unlock_timeout_unlocks_and_tells_the_owner(conf_dir, make_app):
    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace("  Network Outage:\n",
                                             "  Network Outage:\n    unlock_timeout: 30\n"))
    app = make_app()
    first = ingest_into(app, make_mail(subject="WAN down", to="outage@example.com"))
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one()
        tickets.set_field(s, t, "owner", "nsmith", "test")
        tickets.set_field(s, t, "locked", True, "test")
    now = utcnow()
    assert timers.unlock_timeouts(app.store, app.config, now + timedelta(minutes=20)) == []
    assert timers.unlock_timeouts(app.store, app.config, now + timedelta(minutes=31)) == \
        [first.ticket_number]
    assert notified(app, "UnlockTimeout") == [("nia.smith@example.com", "UnlockTimeout")]
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one()
        assert t.locked is False
        assert any("unlock timeout" in h.message for h in t.history)
    assert timers.unlock_timeouts(app.store, app.config, now + timedelta(minutes=90)) == []


def test_pending_reminder_once_and_pending_auto_close(app):
    a = ingest_into(app, make_mail(subject="Cannot log in"))
    b = ingest_into(app, make_mail(subject="Cannot print", frm="bob@customer.test"))
    due = utcnow() + timedelta(hours=1)
    edit(app, a.ticket_number, state="pending reminder", pending_until=due, owner="jdoe")
    edit(app, b.ticket_number, state="pending auto close+", pending_until=due)
    assert timers.pending_times(app.store, app.config, utcnow()) == []
    later = due + timedelta(minutes=1)
    assert sorted(timers.pending_times(app.store, app.config, later)) == sorted(
        [(a.ticket_number, "reminder"), (b.ticket_number, "auto close")])
    assert notified(app, "PendingReminder") == [("jane.doe@example.com", "PendingReminder")]
    assert timers.pending_times(app.store, app.config, later + timedelta(hours=1)) == []
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == b.ticket_number)).scalar_one()
        assert t.state == "closed successful" and t.pending_until is None
