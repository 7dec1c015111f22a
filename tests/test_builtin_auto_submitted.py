"""Unit tests for filters.builtin.auto_submitted (loops, RFC 3834, bulk, out-of-office)."""
from __future__ import annotations

import pytest

from filters.builtin import auto_submitted
from filters.builtin.auto_submitted import check
from gateway.mail import parse


def mail(headers: str = "", subject: str = "Printer broken", sender: str = "Jane Doe <jane@customer.example>",
         body: str = "Hello,\nthe printer is broken.\n") -> object:
    head = f"From: {sender}\nTo: help@desk.example\nSubject: {subject}\nMessage-ID: <abc@customer.example>\n{headers}"
    return parse((head.rstrip("\n") + "\n\n" + body).replace("\n", "\r\n").encode())


def test_plain_customer_mail_is_not_auto():
    v = check(mail())
    assert not v.hit and v.data == {"kind": None, "out_of_office": False}


@pytest.mark.parametrize("headers, kind, reason", [
    ("Auto-Submitted: auto-replied\n", "auto-replied", "Auto-Submitted"),
    ("Auto-Submitted: auto-generated\n", "auto-generated", "Auto-Submitted"),
    ("Auto-Submitted: auto-notified\n", "auto-generated", "Auto-Submitted"),
    ("Auto-Submitted: auto-replied (zimbra; vacation)\n", "out-of-office", "Auto-Submitted"),
    ("Precedence: bulk\n", "bulk", "Precedence"),
    ("Precedence: junk\n", "bulk", "Precedence"),
    ("Precedence: list\n", "list", "Precedence"),
    ("Precedence: auto_reply\n", "auto-replied", "Precedence"),
    ("X-Autoreply: yes\n", "auto-replied", "X-Autoreply"),
    ("X-Autorespond: Out of office\n", "auto-replied", "X-Autorespond"),
    ("X-Auto-Response-Suppress: All\n", "suppress", "X-Auto-Response-Suppress"),
    ("X-Auto-Response-Suppress: DR, OOF, AutoReply\n", "suppress", "X-Auto-Response-Suppress"),
    ("List-Id: <users.lists.example>\n", "list", "List-Id"),
    ("List-Unsubscribe: <mailto:leave@lists.example>\n", "list", "List-Unsubscribe"),
    ("X-Loop: help@desk.example\n", "loop", "X-Loop"),
    ("X-Ticketgate-Loop: yes\n", "loop", "X-Ticketgate-Loop"),
    ("X-OTRS-Loop: yes\n", "loop", "X-OTRS-Loop"),
    ("X-No-Loop: yes\n", "loop", "X-No-Loop"),
    ("Return-Path: <>\n", "null-sender", "Return-Path"),
])
def test_header_rules(headers, kind, reason):
    v = check(mail(headers))
    assert v.hit, v
    assert v.data["kind"] == kind
    assert v.reason.startswith(reason)


@pytest.mark.parametrize("headers", [
    "Auto-Submitted: no\n",
    "Auto-submitted: No (manually sent)\n",
    "X-Auto-Response-Suppress: DR\n",      # only delivery reports suppressed: a human mail
    "X-OTRS-Loop: no\n",
    "Precedence: normal\n",
    "X-MS-Exchange-Inbox-Rules-Loop: jane@customer.example\n",
    "X-Mailer: Zimbra 7.1.3_GA_3346\n",
])
def test_not_auto(headers):
    v = check(mail(headers))
    assert not v.hit, v


def test_custom_loop_header():
    assert check(mail("X-Acme-Loop: 1\n"), loop_header="X-Acme-Loop").data["kind"] == "loop"
    assert not check(mail("X-Acme-Loop: 1\n")).hit


@pytest.mark.parametrize("sender", [
    "MAILER-DAEMON@mx.example.net", "Mail Delivery System <postmaster@example.net>", "no-reply@shop.example",
    "noreply@github.example", "do-not-reply@bank.example", "DoNotReply@bank.example", "notifications-noreply@x.example",
    "bounces+123@mailer.example",
])
def test_noreply_senders(sender):
    v = check(mail(sender=sender))
    assert v.hit and v.data["kind"] == "noreply", v


def test_noreply_regex_is_configurable():
    assert not check(mail(sender="robot@example.com")).hit
    v = check(mail(sender="robot@example.com"), noreply_regex=r"^robot@")
    assert v.data["kind"] == "noreply"
    assert not check(mail(sender="no-reply@shop.example"), noreply_regex=r"^robot@").hit


def test_own_system_address_is_a_loop():
    v = check(mail(sender="Help Desk <Help@Desk.Example>"), system_addresses=["help@desk.example"])
    assert v.hit and v.data["kind"] == "loop" and "system address" in v.reason
    assert not check(mail(sender="Help Desk <help@desk.example>")).hit  # not configured: not ours


def test_own_message_id_domain_is_a_loop():
    m = mail().message_id
    assert m == "abc@customer.example"
    assert check(mail(), own_domains=["customer.example"]).data["kind"] == "loop"
    assert not check(mail(), own_domains=["desk.example"]).hit


@pytest.mark.parametrize("subject", [
    "Out of Office: Printer broken", "Out of Office AutoReply: Printer broken", "Automatic reply: Printer broken",
    "Abwesenheitsnotiz: Drucker kaputt", "Automatische Antwort: Drucker kaputt", "Autoreply: Printer broken",
    "Auto-Reply: Printer broken", "Réponse automatique : Imprimante", "Vacation: Printer broken",
    "Arpus biroja atrasanas automatiska atbilde: subjecting", "Jane Doe is out of the office.",
])
def test_out_of_office_subjects(subject):
    v = check(mail(subject=subject))
    assert v.hit and v.data["kind"] == "out-of-office" and v.data["out_of_office"], v


@pytest.mark.parametrize("subject", [
    "Re: Out of office planning", "Out of office planning for December", "Fwd: Automatic reply settings broken",
    "Question about the vacation policy", "AW: Abwesenheitsnotiz einrichten?", "Re: Jane Doe is out of the office",
])
def test_human_subjects_about_absence_are_not_flagged(subject):
    v = check(mail(subject=subject))
    assert not v.hit, v


def test_exchange_out_of_office():
    v = check(mail("X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: jane@customer.example\n"))
    assert v.hit and v.data["out_of_office"] and v.data["kind"] == "out-of-office"


def test_gmail_vacation():
    v = check(mail("Precedence: bulk\nX-Autoreply: yes\nAuto-Submitted: auto-replied\n", subject="vacation: hi"))
    assert v.hit and v.data["out_of_office"]


def test_multipart_report_is_machine_made():
    raw = ("From: Jane <jane@customer.example>\nTo: help@desk.example\nSubject: Read: hi\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n"
           "--b\nContent-Type: text/plain\n\nread\n--b\nContent-Type: message/disposition-notification\n\n"
           "Final-Recipient: rfc822; jane@customer.example\nDisposition: manual-action/MDN-sent-manually; displayed\n--b--\n")
    v = check(parse(raw.replace("\n", "\r\n").encode()))
    assert v.hit and v.data["kind"] == "report"


def test_loop_wins_over_other_rules():
    v = check(mail("Precedence: bulk\nX-Ticketgate-Loop: yes\n"))
    assert v.data["kind"] == "loop"


def test_default_constants():
    assert auto_submitted.DEFAULT_LOOP_HEADER == "X-Ticketgate-Loop"
    assert "mailer" in auto_submitted.DEFAULT_NOREPLY_REGEX
