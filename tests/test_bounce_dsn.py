"""Bounce details from issue 11 point 16: delays are soft, a DSN's Status survives an MTA's
boilerplate line, a Sieve reject (RFC 5429 MDN) is a bounce, AOL-style bare recipient names."""
from __future__ import annotations

from filters.builtin import bounce
from gateway.mail.parser import parse_bytes

_DSN = b"""From: MAILER-DAEMON@mx.example.org
To: helpdesk@example.com
Subject: Delivery Status Notification
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

%(text)s
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; kunde@example.net
Action: %(action)s
%(extra)sStatus: %(status)s
--b--
"""


def _dsn(action=b"failed", status=b"5.1.1", extra=b"", text=b"Your mail could not be delivered."):
    return parse_bytes(_DSN % {b"action": action, b"status": status, b"extra": extra, b"text": text})


def test_status_after_a_boilerplate_line_is_kept():
    v = bounce.check(_dsn(extra=b"This line was added by the mail system, it is no field\n"))
    assert v.hit and v.data["status"] == "5.1.1" and v.data["recipients"] == ["kunde@example.net"]


def test_delayed_dsn_is_soft():
    v = bounce.check(_dsn(action=b"delayed", status=b"4.4.7"))
    assert v.hit and not v.data["permanent"]


def test_text_delay_will_continue_to_be_attempted_is_soft():
    raw = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nTo: helpdesk@example.com\n"
           b"Subject: Delivery Status Notification\n\n"
           b"This is an automatically generated Delivery Status Notification.\n\n"
           b"Delivery to the following recipient failed temporarily:\n\n       kunde@example.net\n\n"
           b"Delivery to this recipient will continue to be attempted.\n")
    v = bounce.check(parse_bytes(raw))
    assert v.hit and not v.data["permanent"]


def test_sieve_reject_mdn_is_a_bounce():
    raw = (b"From: Mail Delivery Subsystem <admin@example.org>\nTo: <helpdesk@example.com>\n"
           b"Subject: Automatically rejected mail\nAuto-Submitted: auto-replied (rejected)\n"
           b'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification;'
           b' boundary="m"\n\n--m\nContent-Type: text/plain\n\n'
           b"Your message to <kunde@example.org> was automatically rejected:\nQuota exceeded\n"
           b"--m\nContent-Type: message/disposition-notification\n\n"
           b"Reporting-UA: mail; Dovecot Mail Delivery Agent\nFinal-Recipient: rfc822; kunde@example.org\n"
           b"Disposition: automatic-action/MDN-sent-automatically; deleted\n--m--\n")
    v = bounce.check(parse_bytes(raw))
    assert v.hit and v.data["recipients"] == ["kunde@example.org"] and v.data["permanent"]


def test_read_receipt_is_still_no_bounce():
    raw = (b"From: kunde@example.org\nTo: helpdesk@example.com\nSubject: Read: x\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/report; report-type=disposition-notification; boundary="m"\n\n'
           b"--m\nContent-Type: text/plain\n\nread\n--m\nContent-Type: message/disposition-notification\n\n"
           b"Final-Recipient: rfc822; kunde@example.org\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\n--m--\n")
    assert not bounce.check(parse_bytes(raw)).hit


def test_bare_screen_name_gets_the_daemons_domain():
    raw = (b'From: "Mail Delivery Subsystem" <MAILER-DAEMON@aol.example>\nTo: list@example.com\n'
           b"Subject: Mail Delivery Problem\n\n"
           b"Your mail to the following recipients could not be delivered because they are not "
           b"accepting mail from list@example.com:\n\tscreenname\n")
    v = bounce.check(parse_bytes(raw))
    assert v.hit and v.data["recipients"] == ["screenname@aol.example"]
