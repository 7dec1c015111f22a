"""The foundation path through the Python API: new tickets, follow-ups, follow-up options,
lock after follow-up, merged tickets, duplicates, sender type, dispatch, history reasons."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.store.models import Article, History, InboundMail, Ticket
from tests.mails import make_mail


def ticket(app, number) -> Ticket:
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        t.articles, t.history  # load while the session is open
        return t


def count(app, model) -> int:
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def set_ticket(app, number, **values):
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        for k, v in values.items():
            setattr(t, k, v)


def test_new_ticket_from_customer_mail(app, ingest):
    out = ingest(make_mail(subject="Monitor on fire", msgid="new1@customer.test"))
    assert out.status == "done" and out.action == "new_ticket"
    t = ticket(app, out.ticket_number)
    assert t.title == "Monitor on fire"
    assert t.queue == "Unassigned"       # To: support@example.com is Unassigned's address
    assert t.state == "new" and t.priority == "3 normal"
    assert t.customer_user == "alice@customer.test"
    [article] = t.articles
    assert article.sender_type == "customer" and article.direction == "in"
    assert article.message_id == "new1@customer.test"
    assert t.first_response_due is not None and t.escalation_next is not None
    assert any("system address" in line["message"] for h in t.history
               for line in h.data.get("trace", []))


def test_ticket_number_format_and_uniqueness(app, ingest):
    numbers = {ingest(make_mail(subject=f"s{i}")).ticket_number for i in range(20)}
    assert len(numbers) == 20
    for n in numbers:
        assert app.pipeline.numbers.valid(n) and n[8:10] == "10" and len(n) == 16


@pytest.mark.parametrize("to,queue", [("hardware@example.com", "Hardware"),
                                      ("printers@example.com", "Hardware::Printer"),
                                      ("nobody@elsewhere.test", "Unassigned")])
def test_dispatch_by_recipient(app, ingest, to, queue):
    out = ingest(make_mail(to=to))
    assert ticket(app, out.ticket_number).queue == queue


def test_dispatch_by_envelope_and_source_queue(app, ingest):
    out = ingest(make_mail(to="x@y.test"), rcpt_to=["vip@example.com"])
    assert ticket(app, out.ticket_number).queue == "VIP"
    out = ingest(make_mail(to="x@y.test"), queue="QA")
    assert ticket(app, out.ticket_number).queue == "QA"


def test_follow_up_by_subject_case_insensitive_with_prefixes(app, ingest):
    first = ingest(make_mail(subject="Laptop"))
    for subject in (f"Re: [Ticket#{first.ticket_number}] Laptop",
                    f"AW: Fwd: ticket#{first.ticket_number} Laptop",
                    f"RE:[TICKET#{first.ticket_number}]"):
        out = ingest(make_mail(subject=subject))
        assert out.action == "follow_up" and out.ticket_number == first.ticket_number
    assert len(ticket(app, first.ticket_number).articles) == 4


def test_other_systems_numbers_are_not_ours(app, ingest):
    first = ingest(make_mail(subject="Laptop"))
    n = first.ticket_number
    bad_check = n[:-1] + str((int(n[-1]) + 1) % 10)
    other_sid = n[:8] + "99" + n[10:]
    for subject in (f"Re: [Ticket#{bad_check}]", f"Re: [Ticket#{other_sid}]",
                    f"Re: [Case#{n}]", f"Re: FooTicket#{n}bar"):
        out = ingest(make_mail(subject=subject))
        assert out.action == "new_ticket", subject


def test_follow_up_by_in_reply_to_and_references(app, ingest):
    first = ingest(make_mail(subject="VPN", msgid="orig@customer.test"))
    out = ingest(make_mail(subject="no number", in_reply_to="orig@customer.test"))
    assert out.action == "follow_up" and out.ticket_number == first.ticket_number
    out = ingest(make_mail(subject="no number", references=["unknown@x", "orig@customer.test"]))
    assert out.action == "follow_up" and out.ticket_number == first.ticket_number
    t = ticket(app, first.ticket_number)
    assert [h.type for h in t.history].count("FollowUp") == 2
    assert any("in-reply-to names orig@customer.test" in h.message for h in t.history)


def test_body_search_is_off_by_default(app, ingest):
    first = ingest(make_mail(subject="VPN"))
    out = ingest(make_mail(subject="no ref", body=f"about Ticket#{first.ticket_number} again"))
    assert out.action == "new_ticket"


def test_body_search_when_switched_on(conf_dir, make_app):
    text = (conf_dir / "ticketgate.yaml").read_text().replace("search_body: no",
                                                               "search_body: yes")
    (conf_dir / "ticketgate.yaml").write_text(text)
    app = make_app()
    from gateway.intake import accept
    from gateway.processing import process_inbound

    def ingest(raw):
        return process_inbound(app.store, app.pipeline, accept(app.store, raw).inbound_id)

    first = ingest(make_mail(subject="VPN"))
    out = ingest(make_mail(subject="no ref", body=f"about Ticket#{first.ticket_number} again"))
    assert out.action == "follow_up" and out.ticket_number == first.ticket_number


@pytest.mark.parametrize("queue,option,expected_action,expected_state", [
    ("Unassigned", "possible", "follow_up", "open"),
    ("Large Hardware Purchases", "reject", "reject", "closed successful"),
    ("Hardware::Printer", "new_ticket", "new_ticket_closed", "closed successful"),
])
def test_follow_up_to_closed_ticket(app, ingest, queue, option, expected_action,
                                    expected_state):
    assert app.config.queues[queue].follow_up == option
    first = ingest(make_mail(subject="Old"), queue=queue)
    set_ticket(app, first.ticket_number, state="closed successful")
    out = ingest(make_mail(subject=f"Re: [Ticket#{first.ticket_number}] Old"))
    assert out.action == expected_action
    old = ticket(app, first.ticket_number)
    assert old.state == expected_state
    if expected_action == "new_ticket_closed":
        assert out.ticket_number != first.ticket_number
        assert len(old.articles) == 1
        assert any(h.type == "FollowUpNewTicket" for h in old.history)
    else:
        assert out.ticket_number == first.ticket_number
        assert len(old.articles) == 2         # a rejected mail is still recorded
    if expected_action == "reject":
        assert old.articles[-1].flags["auto_response"]["type"] == "auto_reject"


def test_follow_up_to_open_ticket_in_reject_queue_is_accepted(app, ingest):
    first = ingest(make_mail(subject="Buy"), queue="Large Hardware Purchases")
    out = ingest(make_mail(subject=f"Re: [Ticket#{first.ticket_number}]"))
    assert out.action == "follow_up"


@pytest.mark.parametrize("queue,lock", [("Hardware", True), ("Unassigned", False)])
def test_lock_after_follow_up(app, ingest, queue, lock):
    first = ingest(make_mail(subject="Disk"), queue=queue)
    set_ticket(app, first.ticket_number, state="closed successful", owner="tmoore",
               locked=False)
    ingest(make_mail(subject=f"Re: [Ticket#{first.ticket_number}]"))
    t = ticket(app, first.ticket_number)
    assert t.state == "open" and t.owner == "tmoore" and t.locked is lock
    assert any(h.type == "Lock" and "lock_after_follow_up" in h.message for h in t.history) \
        or not lock


def test_pending_ticket_reopens_on_follow_up_new_stays_new(app, ingest):
    a = ingest(make_mail(subject="A"))
    b = ingest(make_mail(subject="B"))
    set_ticket(app, b.ticket_number, state="pending reminder")
    ingest(make_mail(subject=f"Re: [Ticket#{a.ticket_number}]"))
    ingest(make_mail(subject=f"Re: [Ticket#{b.ticket_number}]"))
    assert ticket(app, a.ticket_number).state == "new"
    assert ticket(app, b.ticket_number).state == "open"


@pytest.mark.parametrize("how", ["subject", "references", "in-reply-to"])
def test_follow_up_to_merged_ticket_goes_to_target(app, ingest, how):
    old = ingest(make_mail(subject="Old", msgid=f"old-{how}@customer.test"))
    target = ingest(make_mail(subject="Target"))
    with app.store.session() as s:
        t_old = s.execute(select(Ticket).where(Ticket.number == old.ticket_number)).scalar_one()
        t_new = s.execute(select(Ticket).where(Ticket.number == target.ticket_number)) \
            .scalar_one()
        t_old.merged_into_id, t_old.state = t_new.id, "merged"
    kwargs = {"subject": f"Re: [Ticket#{old.ticket_number}]"} if how == "subject" else \
        {"references": [f"old-{how}@customer.test"]} if how == "references" else \
        {"in_reply_to": f"old-{how}@customer.test"}
    kwargs.setdefault("subject", "Re: Old")
    out = ingest(make_mail(**kwargs))
    assert out.action == "follow_up" and out.ticket_number == target.ticket_number
    assert ticket(app, old.ticket_number).state == "merged"   # not reopened
    assert len(ticket(app, target.ticket_number).articles) == 2


def test_duplicate_delivery_makes_one_article(app, ingest):
    raw = make_mail(subject="Dup", msgid="dup@customer.test")
    first = ingest(raw)
    again = ingest(b"Received: from mx2 by us; Mon, 23 Nov 2026 10:00:01 +0100\r\n" + raw)
    assert again.status == "skipped"
    assert len(ticket(app, first.ticket_number).articles) == 1
    assert count(app, InboundMail) == 1


def test_reused_message_id_with_other_content_is_kept(app, ingest):
    a = ingest(make_mail(subject="One", msgid="same@customer.test", body="first"))
    b = ingest(make_mail(subject="Two", msgid="same@customer.test", body="second"))
    assert a.status == b.status == "done"
    assert count(app, InboundMail) == 2 and count(app, Article) == 2


def test_unproven_agent_sender_is_a_customer_article_flagged_in_history(app, ingest):
    """An agent's From alone proves nothing (proofs: tests/test_agent_identity.py)."""
    first = ingest(make_mail(subject="Need help"))
    out = ingest(make_mail(subject=f"Re: [Ticket#{first.ticket_number}]",
                           frm="Tom Moore <Tom.Moore@example.com>"))
    t = ticket(app, first.ticket_number)
    assert out.action == "follow_up"
    article = [a for a in t.articles if a.direction == "in"][-1]
    assert article.sender_type == "customer"
    assert article.flags["agent_claim"]["agent"] == "tmoore"
    flagged = [h for h in t.history if h.type == "AgentClaimUnproven"]
    assert flagged and flagged[0].message == ("claims to be agent tmoore but proves nothing: "
                                              "handled as customer")


def test_attachments_are_stored_once_per_content(app, ingest):
    from gateway.store.models import Blob

    def with_attachment(name):
        return (b"From: a@customer.test\r\nTo: support@example.com\r\nSubject: att\r\n"
                b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
                b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached " + name.encode() +
                b"\r\n--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;"
                b" filename=\"" + name.encode() + b"\"\r\nContent-Transfer-Encoding: base64\r\n"
                b"\r\nJVBERi0xLjQK\r\n--XX--\r\n")

    a = ingest(with_attachment("a.pdf"))
    ingest(with_attachment("b.pdf"))
    t = ticket(app, a.ticket_number)
    with app.store.session() as s:
        art = s.get(Article, t.articles[0].id)
        assert [x.filename for x in art.attachments] == ["a.pdf"]
        assert art.attachments[0].blob.data == b"%PDF-1.4\n"
    assert count(app, Blob) == 1


def test_malformed_mail_is_stored_with_defects(app, ingest):
    raw = (b"From: =?x-unknown?B?Zm9v?= <a@customer.test>\r\nSubject: =?utf-8?B?broken\r\n"
           b"Content-Type: multipart/mixed; boundary=never\r\n\r\n\xff\xfe garbage \x00")
    out = ingest(raw)
    assert out.status == "done" and out.action == "new_ticket"


def test_auto_submitted_mail_suppresses_auto_response(app, ingest):
    out = ingest(make_mail(subject="I am away", headers={"Auto-Submitted": "auto-replied"}))
    t = ticket(app, out.ticket_number)
    flags = t.articles[0].flags
    assert flags["auto_response"]["suppressed"].startswith("auto_submitted")


def test_every_decision_in_history_with_reason(app, ingest):
    out = ingest(make_mail(subject="Why"))
    with app.store.session() as s:
        rows = s.execute(select(History).join(Ticket).where(
            Ticket.number == out.ticket_number)).scalars().all()
        assert rows[0].type == "NewTicket" and "queue 'Unassigned'" in rows[0].message
        steps = [line["step"] for line in rows[0].data["trace"]]
        assert steps[:1] == ["prefilter"] and "follow-up" in steps and "queue" in steps


def test_filter_and_trusted_header_dynamic_fields_are_merged(conf_dir, make_app):
    (conf_dir / "filters.d" / "90-field.yaml").write_text(
        "- name: region\n  match: {subject: 'Branch'}\n"
        "  set: {dynamic_fields: {Region: North}}\n")
    app = make_app()
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    raw = make_mail(subject="Branch office", headers={"X-Ticket-DynamicField-Branch": "101"})
    out = process_inbound(app.store, app.pipeline,
                          accept(app.store, raw, Envelope(trusted=True)).inbound_id)
    assert ticket(app, out.ticket_number).dynamic_fields == {"Branch": "101", "Region": "North"}
