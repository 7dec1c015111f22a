"""Auto-responses per queue: content, headers (RFC 3834), threading, the stored outgoing
article, reject and follow-up answers, delivered through the real outbox into an SMTP sink."""
from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import select

from gateway.store.models import Article, Ticket
from notifier.outbound import delivery
from gateway.store.models import OutboundMail
from tests.mails import make_mail


def use_sink(conf_dir, controller, extra: str = ", store_articles: true") -> None:
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                       f"{controller.port}{extra}}}\n")


@pytest.fixture
def sink_app(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    return make_app()


def ingest_into(app, raw: bytes, **envelope):
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    accepted = accept(app.store, raw, Envelope(**envelope))
    return process_inbound(app.store, app.pipeline, accepted.inbound_id)


def ticket(app, number):
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        t.articles, t.history  # load
        return t


def delivered(handler, rcpt):
    return [email.message_from_bytes(e.content, policy=policy.default)
            for e in handler.envelopes if rcpt in e.rcpt_tos]


def test_auto_reply_headers_threading_and_stored_article(sink_app, smtp_sink):
    _, handler = smtp_sink
    out = ingest_into(sink_app, make_mail(subject="Cannot log in", msgid="first@customer.test",
                                          references=["older@customer.test"]))
    t = ticket(sink_app, out.ticket_number)
    results = delivery.drain(sink_app.store, sink_app.config)
    assert [r.status for r in results if r.status != "sent"] == []
    [msg] = delivered(handler, "alice@customer.test")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Ticketgate-Loop"] == "helpdesk.example.com"
    assert msg["In-Reply-To"] == "<first@customer.test>"
    assert msg["References"] == "<older@customer.test> <first@customer.test>"
    assert msg["Message-ID"].endswith("@helpdesk.example.com>")
    assert msg["From"] == "Example Help Desk <support@example.com>"
    assert f"[Ticket#{t.number}]" in msg["Subject"] and "Cannot log in" in msg["Subject"]
    body = msg.get_content().replace("\r\n", "\n")
    assert f"opened ticket {t.number} in queue\nUnassigned" in body
    assert "Alice Customer" in body
    [sent] = [a for a in t.articles if a.direction == "out"]
    assert sent.sender_type == "system" and sent.message_id == msg["Message-ID"].strip("<>")
    assert sent.in_reply_to == "first@customer.test"
    assert any(h.type == "SendAutoResponse" for h in t.history)
    # a customer's reply to the auto-reply (no ticket number in the subject) is a follow-up
    again = ingest_into(sink_app, make_mail(subject="more info", in_reply_to=sent.message_id))
    assert again.ticket_number == t.number


def test_auto_follow_up(sink_app, smtp_sink):
    _, handler = smtp_sink
    first = ingest_into(sink_app, make_mail(subject="Need a laptop"))
    hook = f"[Ticket#{first.ticket_number}]"
    again = ingest_into(sink_app, make_mail(subject=f"Re: {hook} Need a laptop",
                                            body="Any news?"))
    assert again.ticket_number == first.ticket_number
    delivery.drain(sink_app.store, sink_app.config)
    with sink_app.store.session() as s:
        kinds = list(s.execute(select(OutboundMail.kind).where(
            OutboundMail.kind.like("auto%")).order_by(OutboundMail.id)).scalars())
    assert kinds == ["auto_reply", "auto_follow_up"]
    msgs = delivered(handler, "alice@customer.test")
    assert "added your mail to ticket" in msgs[1].get_content()
    assert all(m["Auto-Submitted"] == "auto-replied" for m in msgs)


def test_reject_on_closed_ticket(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    app = make_app()
    first = ingest_into(app, make_mail(subject="Quote for 40 laptops",
                                       to="support@example.com"),)
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one()
        t.queue, t.state = "Large Hardware Purchases", "closed successful"
    out = ingest_into(app, make_mail(subject=f"Re: [Ticket#{first.ticket_number}] Quote"))
    assert out.ticket_number == first.ticket_number
    delivery.drain(app.store, app.config)
    with app.store.session() as s:
        rows = s.execute(select(OutboundMail).where(OutboundMail.kind == "auto_reject")).all()
    assert len(rows) == 1
    [msg] = [m for m in delivered(handler, "alice@customer.test")
             if "not accepted" in m["Subject"]]
    assert "does not take follow-ups" in msg.get_content()
    assert msg["Auto-Submitted"] == "auto-replied"


def test_no_auto_response_to_auto_submitted_mail(sink_app):
    ingest_into(sink_app, make_mail(headers={"Auto-Submitted": "auto-replied"}))
    with sink_app.store.session() as s:
        assert s.execute(select(OutboundMail).where(
            OutboundMail.kind.like("auto%"))).first() is None


def test_queue_without_template_sends_nothing(sink_app):
    out = ingest_into(sink_app, make_mail(to="outage@example.com", subject="WAN down"))
    t = ticket(sink_app, out.ticket_number)
    assert t.queue == "Network Outage"
    assert any(h.type == "AutoResponse" and "none configured" in h.message for h in t.history)
    assert not [a for a in t.articles if a.direction == "out"]


def test_template_syntax_error_is_a_config_error_with_file_and_line(conf_dir):
    from gateway.app import load_config
    from gateway.config import ConfigError

    (conf_dir / "templates" / "auto_reply.txt").write_text(
        "Subject: {{ ticket.hook }} hello\n\nDear {{ customer.name }},\n{% if x %}never closed\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert "auto_reply.txt:4" in str(err.value) or "auto_reply.txt:5" in str(err.value)


def test_unknown_template_file_is_a_config_error(conf_dir):
    from gateway.app import load_config
    from gateway.config import ConfigError

    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace("auto_reject: auto_reject.txt,",
                                             "auto_reject: missing.txt,", 1))
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    assert "missing.txt" in str(err.value) and "queues.yaml" in str(err.value)


def test_sandbox_refuses_unsafe_attribute_access(conf_dir):
    from gateway.app import load_config
    from gateway.config import ConfigError

    (conf_dir / "templates" / "auto_reply.txt").write_text(
        "Subject: x\n\n{{ ticket.__class__.__mro__ }}\n")
    config = load_config(conf_dir)   # compiles; the sandbox refuses at render time
    subject, body = config.templates["auto_reply.txt"].render(ticket=object())
    assert "class" not in body and "object" not in body
    assert ConfigError


def test_salutation_and_signature_wrap_the_body(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    use_sink(conf_dir, controller)
    path = conf_dir / "queues.yaml"
    path.write_text(path.read_text().replace(
        "    comment: First stop for everything that no rule routes elsewhere.\n",
        "    comment: First stop for everything that no rule routes elsewhere.\n"
        "    salutation: \"Hello,\"\n    signature: \"-- \\nYour Help Desk\"\n"))
    app = make_app()
    ingest_into(app, make_mail(subject="Cannot log in"))
    delivery.drain(app.store, app.config)
    [msg] = delivered(handler, "alice@customer.test")
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("Hello,\n\nDear Alice Customer,")
    assert body.endswith("-- \nYour Help Desk\n")
