"""An agent's reply reaches the customer (from the queue's system address, commands and quoted
text stripped) and stops the first-response escalation; notes and refusals do not."""
from __future__ import annotations

import smtplib

import pytest

from gateway.agents.quoting import customer_text
from tests.mails import make_mail
from tests.test_agent_identity import (AGENT_AUTH, add_agent_auth, agent_app,  # noqa: F401
                                       agent_mail, customer_ticket, ingest_with, last_in, load_ticket,
                                       outbox, reply_address)

REPLY = """#time 15

Hello Alice,

the printer is fixed.

Tom

On Mon, 23 Nov 2026 10:00, Alice Customer <alice@customer.test> wrote:
> It burns.
"""


def test_agent_reply_reaches_the_customer_and_stops_first_response(agent_app, outbox,
                                                                   smtp_sink):
    t = customer_ticket(agent_app)
    assert t.first_response_due is not None and t.first_agent_contact is None
    update_before = t.update_due
    out = ingest_with(agent_app, agent_mail(t, body=REPLY,
                                            to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, out.ticket_number)
    article = last_in(t)
    assert article.sender_type == "agent" and not article.internal
    assert article.flags["time_units"] == 15
    assert t.first_agent_contact == article.created
    assert t.last_contact == article.created
    assert t.first_response_due is None                 # first response done
    assert t.update_due is not None and t.update_due >= update_before   # update clock reset
    assert t.state == "open"                             # new -> open on the first answer

    [queued] = outbox.of_kind("agent_reply")
    msg = queued["message"]
    assert queued["rcpt_to"] == ["alice@customer.test"]
    assert queued["mail_from"] == "support@example.com"
    assert msg["From"] == "Example Help Desk <support@example.com>"
    assert f"[Ticket#{t.number}]" in msg["Subject"]
    text = msg.get_content()
    assert "the printer is fixed." in text
    assert "#time" not in text and "It burns" not in text and "wrote:" not in text
    assert queued["ticket_id"] == t.id and queued["article_id"] == article.id
    assert any(h.type == "SendAnswer" and "queued to alice@customer.test" in h.message
               for h in t.history)

    # and it is a mail an SMTP server accepts for the customer (real aiosmtpd sink)
    controller, handler = smtp_sink
    with smtplib.SMTP(controller.hostname, controller.port) as smtp:
        smtp.send_message(msg, from_addr=queued["mail_from"], to_addrs=queued["rcpt_to"])
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["alice@customer.test"]
    assert b"the printer is fixed." in envelope.content


def test_reply_comes_from_the_system_address_of_the_ticket_queue(agent_app, outbox):
    out = ingest_with(agent_app, make_mail(to="printers@example.com", subject="Jam"))
    t = load_ticket(agent_app, out.ticket_number)
    assert t.queue == "Hardware::Printer"
    ingest_with(agent_app, agent_mail(t, to=reply_address(agent_app, "tmoore", t.id)))
    [queued] = outbox.of_kind("agent_reply")
    assert queued["mail_from"] == "printers@example.com"


def test_note_is_internal_and_not_sent(agent_app, outbox):
    t = customer_ticket(agent_app)
    ingest_with(agent_app, agent_mail(t, body="#note\nCustomer sounds upset, call first.",
                                      to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, t.number)
    assert last_in(t).internal and last_in(t).sender_type == "agent"
    assert outbox.queued == []
    assert t.first_agent_contact is None and t.first_response_due is not None


def test_commands_only_mail_sends_nothing_to_the_customer(agent_app, outbox):
    t = customer_ticket(agent_app)
    ingest_with(agent_app, agent_mail(t, body="#priority 4\n",
                                      to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, t.number)
    assert t.priority == "4 high"
    assert outbox.queued == [] and last_in(t).internal


def test_agent_without_rw_cannot_write_to_the_customer(agent_app, outbox):
    """jdoe (Tier 1) has only move_into/create/note on Tier 2's Hardware queue."""
    out = ingest_with(agent_app, make_mail(to="hardware@example.com", subject="Disk"))
    t = load_ticket(agent_app, out.ticket_number)
    ingest_with(agent_app, agent_mail(t, frm="Jane Doe <jane.doe@example.com>",
                                      to=reply_address(agent_app, "jdoe", t.id)))
    t = load_ticket(agent_app, t.number)
    assert last_in(t).internal
    assert outbox.of_kind("agent_reply") == []
    [answer] = outbox.of_kind("agent_command_answer")
    assert answer["rcpt_to"] == ["jane.doe@example.com"]
    assert "lacks the 'rw' right on group 'Tier 2'" in answer["message"].get_content()


def test_the_gateway_without_the_notifier_stores_the_reply_and_sends_nothing(agent_app,
                                                                             outbox):
    """Sending is the notifier's after-apply hook: a pipeline built without it still stores
    the agent's article and applies its commands, and queues nothing."""
    t = customer_ticket(agent_app)
    agent_app.pipeline.after_apply = ()
    ingest_with(agent_app, agent_mail(t, to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, t.number)
    assert last_in(t).sender_type == "agent" and not last_in(t).internal
    assert t.first_agent_contact is not None
    assert not any(h.type == "SendAnswer" for h in t.history)
    assert outbox.queued == []


def test_customer_text_strips_quotes_and_markers():
    assert customer_text(REPLY.split("\n", 2)[2]) == "Hello Alice,\n\nthe printer is fixed." \
                                                     "\n\nTom"
    assert customer_text("Yes.\n\n-----Original Message-----\nFrom: x") == "Yes."
    assert customer_text("Ja.\n\nAm 23.11.2026 um 10:00 schrieb Alice <a@b>:\n> x") == "Ja."
    assert customer_text("Ok\n\n> quoted\n> more\n") == "Ok"
    assert customer_text("> inline quote\nmy answer") == "> inline quote\nmy answer"


def test_agent_reply_delivered_by_the_outbox_worker(conf_dir, make_app, smtp_sink):
    """The real outbound queue (notifier/outbound/) and its sender, into an SMTP sink."""
    from notifier.outbound import delivery

    controller, handler = smtp_sink
    if "\noutbound:" in (conf_dir / "ticketgate.yaml").read_text():
        pytest.skip("conf/ticketgate.yaml has its own outbound: section")
    add_agent_auth(conf_dir, AGENT_AUTH + f"\noutbound: {{host: 127.0.0.1, port: "
                                          f"{controller.port}}}\n")
    app = make_app()
    t = customer_ticket(app)
    ingest_with(app, agent_mail(t, body=REPLY, to=reply_address(app, "tmoore", t.id)))
    results = delivery.drain(app.store, app.config)
    assert results and all(r.status == "sent" for r in results)
    [envelope] = [e for e in handler.envelopes if b"the printer is fixed." in e.content]
    assert envelope.rcpt_tos == ["alice@customer.test"]
    assert envelope.mail_from == "support@example.com"
    assert b"#time" not in envelope.content and b"It burns" not in envelope.content
    t = load_ticket(app, t.number)
    assert t.first_response_due is None
    # the customer answers our copy (new subject): References name its Message-ID
    sent_id = last_in(t).flags["sent_message_id"]
    out = ingest_with(app, make_mail(subject="thanks!", body="Works now.", in_reply_to=sent_id,
                                     references=[sent_id]))
    assert out.action == "follow_up" and out.ticket_number == t.number
