"""Outgoing mail to international senders: UTF-8 local parts and display names, IDN domains
(IDNA 2008/UTS #46, never the IDNA 2003 stdlib codec), non-ASCII Message-IDs and raw 8-bit
headers, through the real pipeline; and a mail that cannot be built never costs the ticket."""
from __future__ import annotations

import email
from email import policy
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from gateway.store.models import Article, History, InboundMail, OutboundMail, Ticket
from notifier import message
from notifier.outbound import delivery
from tests.mails import make_mail
from tests.test_agent_identity import (add_agent_auth, agent_mail, ingest_with,  # noqa: F401
                                       reply_address)


def raw_mail(frm: str, *, msgid: str = "m1@x.test", refs: str = "", subject="Hilfe",
             encoding: str = "utf-8") -> bytes:
    head = [f"From: {frm}", "To: support@example.com", f"Subject: {subject}",
            f"Message-ID: <{msgid}>", "Date: Mon, 23 Nov 2026 10:00:00 +0100"]
    if refs:
        head.append(f"References: {refs}")
    if encoding == "utf-8":
        head += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + "\r\n\r\nBitte helfen Sie mir.\r\n").encode(encoding)


# Real-world shapes: RFC 6532 UTF-8 headers, and raw 8-bit Latin-1 without any MIME label.
MAILS = {
    "utf8 local part and name": raw_mail("Jürgen Müller <jürgen@müller.de>"),
    "non-ascii message-id and references": raw_mail(
        "anna@customer.test", msgid="größe-1@beispiel.de",
        refs="<ältere@beispiel.de> <ok-1@beispiel.de>"),
    "raw 8-bit latin-1 headers": raw_mail("J\xfcrgen <j\xfcrgen@example.de>",
                                          msgid="a\xe4@x.test", subject="Gr\xfc\xdfe",
                                          encoding="latin-1"),
    "idn domain": raw_mail("Kunde Zwei <kunde2@straße.de>"),
}


def rows(app, kind=None):
    with app.store.read_session() as s:
        query = select(OutboundMail).order_by(OutboundMail.id)
        if kind:
            query = query.where(OutboundMail.kind == kind)
        return [SimpleNamespace(**{c.key: getattr(r, c.key) for c in OutboundMail.__table__.c})
                for r in s.execute(query).scalars()]


def load(app, number):
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        t.articles, t.history  # noqa: B018 - load while the session is open
        return t


def parsed(row):
    """The queued mail as a receiving MUA reads it (RFC 6532: headers are UTF-8)."""
    return email.message_from_string(row.raw.decode("utf-8"), policy=policy.default)


@pytest.mark.parametrize("case", list(MAILS))
def test_international_sender_gets_ticket_and_auto_reply(app, ingest, case):
    out = ingest(MAILS[case])
    assert out.status == "done" and out.action == "new_ticket", out.error
    t = load(app, out.ticket_number)
    assert [a.direction for a in t.articles][:1] == ["in"]
    [auto] = rows(app, "auto_reply")
    msg = parsed(auto)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert any(h.type == "SendAutoResponse" for h in t.history)
    assert not any(h.type == "SendSkipped" for h in t.history)
    assert rows(app, "notification")                    # the agents hear of it as usual
    with app.store.read_session() as s:
        assert s.execute(select(InboundMail.status)).scalar_one() == "done"


def test_utf8_local_part_and_name_are_encoded_and_flagged(app, ingest):
    ingest(MAILS["utf8 local part and name"])
    [auto] = rows(app, "auto_reply")
    # the name as RFC 2047 encoded words, the domain in A-labels, the local part UTF-8
    head = auto.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    to_line = next(line for line in head.split("\r\n") if line.startswith("To: "))
    assert "=?utf-8?" in to_line and "Müller" not in to_line
    assert to_line.endswith("<jürgen@xn--mller-kva.de>")
    msg = parsed(auto)
    assert msg["To"].addresses[0].display_name == "Jürgen Müller"
    assert auto.rcpt_to == ["jürgen@xn--mller-kva.de"]
    assert auto.smtputf8 is True                         # delivery needs SMTPUTF8 for it
    assert auto.rcpt_key == "jürgen@müller.de"           # the loop guard's key is unchanged
    assert all(not row.smtputf8 for row in rows(app, "notification"))


def test_idn_domain_uses_idna2008_in_header_and_envelope(app, ingest):
    ingest(MAILS["idn domain"])
    [auto] = rows(app, "auto_reply")
    msg = parsed(auto)
    assert msg["To"].addresses[0].addr_spec == "kunde2@xn--strae-oqa.de"
    assert "strasse" not in auto.raw.decode("ascii")     # IDNA 2003 would name another domain
    assert auto.rcpt_to == ["kunde2@xn--strae-oqa.de"]
    assert auto.raw.isascii() and auto.smtputf8 is False


def test_idn_auto_reply_is_delivered_to_the_a_label_recipient(conf_dir, make_app, smtp_sink):
    controller, handler = smtp_sink
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                       f"{controller.port}}}\n")
    app = make_app()
    out = ingest_with(app, MAILS["idn domain"])
    assert out.status == "done"
    results = delivery.drain(app.store, app.config)
    assert results and all(r.status == "sent" for r in results), results
    [env] = [e for e in handler.envelopes if e.rcpt_tos != [] and "xn--" in e.rcpt_tos[0]]
    assert env.rcpt_tos == ["kunde2@xn--strae-oqa.de"]
    assert b"To: Kunde Zwei <kunde2@xn--strae-oqa.de>" in env.content


def test_non_ascii_message_ids_are_left_out_of_an_ascii_mail(app, ingest):
    ingest(MAILS["non-ascii message-id and references"])
    [auto] = rows(app, "auto_reply")
    msg = parsed(auto)
    assert auto.raw.isascii() and not auto.smtputf8
    assert msg["In-Reply-To"] is None                    # <größe-1@…> cannot be written here
    assert msg["References"] == "<ok-1@beispiel.de>"


def test_non_ascii_message_ids_stay_in_a_utf8_mail(app, ingest):
    ingest(raw_mail("Jürgen <jürgen@müller.de>", msgid="größe-2@beispiel.de",
                    refs="<ältere@beispiel.de>"))
    [auto] = rows(app, "auto_reply")
    msg = parsed(auto)
    assert auto.smtputf8
    assert msg["In-Reply-To"] == "<größe-2@beispiel.de>"
    assert msg["References"] == "<ältere@beispiel.de> <größe-2@beispiel.de>"


def test_a_reply_to_the_auto_reply_joins_the_ticket(app, ingest):
    first = ingest(MAILS["utf8 local part and name"])
    [auto] = rows(app, "auto_reply")
    reply = raw_mail("Jürgen Müller <jürgen@müller.de>", msgid="antwort@müller.de",
                     refs=f"<{auto.message_id}>", subject="Re: Hilfe")
    second = ingest(reply)
    assert second.action == "follow_up" and second.ticket_number == first.ticket_number


# ---- a mail that cannot be built ------------------------------------------------------------
def test_unbuildable_auto_reply_is_recorded_and_the_ticket_stored(app, ingest):
    out = ingest(raw_mail("Kunde <kunde@☃.net>"))       # U+2603 is no IDNA 2008 code point
    assert out.status == "done" and out.action == "new_ticket", out.error
    t = load(app, out.ticket_number)
    [article] = [a for a in t.articles if a.direction == "in"]
    assert article.from_addr and "kunde@" in article.from_addr
    assert rows(app, "auto_reply") == []
    [skipped] = [h for h in t.history if h.type == "SendSkipped"]
    assert "auto_reply" in skipped.message and "kunde@☃.net" in skipped.message
    assert "not a valid IDN" in skipped.message and "this mail alone" in skipped.message
    assert not any(h.type == "SendAutoResponse" for h in t.history)
    assert len(rows(app, "notification")) >= 1           # the other mails still go


def test_unbuildable_notification_skips_that_agent_only(conf_dir, make_app):
    path = conf_dir / "agents.yaml"
    text = path.read_text()
    assert "email: nia.smith@example.com" in text
    path.write_text(text.replace("email: nia.smith@example.com", "email: nia@☃.example")
                    .replace("email: max.lee@example.com", "email: max.lee@straße.de"))
    app = make_app()
    out = ingest_with(app, make_mail(subject="Drucker brennt"))
    assert out.status == "done", out.error
    t = load(app, out.ticket_number)
    notes = rows(app, "notification")
    sent_to = sorted(r.rcpt_to[0] for r in notes)
    assert "max.lee@xn--strae-oqa.de" in sent_to
    assert not any("nia" in r for r in sent_to)
    [skipped] = [h for h in t.history if h.type == "SendSkipped"]
    assert "NewTicket notification to nsmith" in skipped.message
    [sent] = [h for h in t.history if h.type == "SendAgentNotification"]
    assert "nsmith" not in sent.message and "mlee" in sent.message
    assert rows(app, "auto_reply")                        # the customer still gets the answer


def _customer_ticket(app, frm):
    out = ingest_with(app, raw_mail(frm, msgid="kunde-1@x.test"))
    assert out.status == "done" and out.action == "new_ticket", out.error
    return load(app, out.ticket_number)


def test_agent_reply_to_an_international_customer(conf_dir, make_app):
    add_agent_auth(conf_dir)
    app = make_app()
    t = _customer_ticket(app, "Jürgen Müller <jürgen@müller.de>")
    out = ingest_with(app, agent_mail(t, body="Hallo, erledigt.",
                                      to=reply_address(app, "tmoore", t.id)))
    assert out.status == "done", out.error
    [reply] = rows(app, "agent_reply")
    assert reply.rcpt_to == ["jürgen@xn--mller-kva.de"] and reply.smtputf8
    msg = parsed(reply)
    assert msg["To"].addresses[0].addr_spec == "jürgen@xn--mller-kva.de"
    assert "Hallo, erledigt." in msg.get_content()
    t = load(app, t.number)
    assert any(h.type == "SendAnswer" and "queued to jürgen@xn--mller-kva.de" in h.message
               for h in t.history)


def test_unbuildable_agent_reply_keeps_the_agents_article(conf_dir, make_app):
    add_agent_auth(conf_dir)
    app = make_app()
    t = _customer_ticket(app, "Kunde <kunde@☃.net>")
    out = ingest_with(app, agent_mail(t, body="#time 5\n\nHallo, erledigt.",
                                      to=reply_address(app, "tmoore", t.id)))
    assert out.status == "done", out.error
    t = load(app, t.number)
    agent_article = [a for a in t.articles if a.sender_type == "agent"][-1]
    assert "erledigt" in agent_article.body and agent_article.flags["time_units"] == 5
    assert rows(app, "agent_reply") == []
    assert any(h.type == "SendSkipped" and "tmoore's reply" in h.message for h in t.history)
    assert any(h.type == "SendAnswer" and "not sent: BuildError" in h.message
               for h in t.history)


# ---- on PostgreSQL: a skipped mail leaves the transaction usable -----------------------------
def test_on_postgresql_too(make_app, postgres_url):
    app = make_app(database=postgres_url)
    ok = ingest_with(app, MAILS["utf8 local part and name"])
    bad = ingest_with(app, raw_mail("Kunde <kunde@☃.net>", msgid="pg-bad@x.test"))
    assert ok.status == bad.status == "done", (ok.error, bad.error)
    with app.store.read_session() as s:
        kinds = s.execute(select(OutboundMail.rcpt_to).where(
            OutboundMail.kind == "auto_reply")).scalars().all()
        assert kinds == [["jürgen@xn--mller-kva.de"]]
        skipped = s.execute(select(History).where(History.type == "SendSkipped")).scalars().all()
        assert len(skipped) == 1
        assert s.execute(select(Article).where(Article.direction == "in")).scalars().all()


# ---- the builder itself ---------------------------------------------------------------------
@pytest.mark.parametrize("domain, wire", [
    ("straße.de", "xn--strae-oqa.de"),                  # IDNA 2003 would give strasse.de
    ("Straße.DE", "xn--strae-oqa.de"),                  # UTS #46 mapping
    ("münchen。de", "xn--mnchen-3ya.de"),               # ideographic full stop
    ("ドメイン.テスト", "xn--eckwd4c7c.xn--zckzah"),
    ("example.com", "example.com"),
])
def test_domains_are_idna2008_uts46(domain, wire):
    assert message.domain_ascii(domain) == wire


@pytest.mark.parametrize("address", ["kunde@☃.net", "a b@x.de", "no-at-sign", "x@a..dé",
                                     "<x>@y.de", "j\udcfcrgen@x.de"])
def test_addresses_no_mail_can_carry_are_refused_cleanly(address):
    with pytest.raises(message.BuildError):
        message.build(fqdn="h.test", from_addr="support@example.com", to=[(address, "")],
                      subject="s", body="b")


def test_builder_keeps_header_injection_out_of_encoded_names():
    msg = message.build(fqdn="h.test", from_addr="support@example.com",
                        to=[("kunde@straße.de", "Jürgen\r\nBcc: evil@x.test")],
                        subject="Grüße\r\nBcc: evil@x.test", body="b",
                        in_reply_to="a@b\r\nBcc: evil@x.test")
    raw = message.wire_bytes(msg)
    assert b"\r\nBcc:" not in raw
    parsed_msg = email.message_from_bytes(raw, policy=policy.default)
    assert parsed_msg["To"].addresses[0].display_name == "Jürgen Bcc: evil@x.test"
    assert parsed_msg["In-Reply-To"] is None
