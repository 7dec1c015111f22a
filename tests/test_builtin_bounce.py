"""Unit tests for filters.builtin.bounce with small hand-written bounces of each format."""
from __future__ import annotations

import pytest

from filters.builtin.bounce import check
from gateway.mail import parse

ORIGINAL = """From: Help Desk <help@desk.example>
To: jane@customer.example
Subject: [Ticket#1001] Your request
Message-ID: <1001.42@desk.example>

Hello Jane
"""


def raw(text: str):
    return parse(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())


def dsn(action="failed", status="5.1.1", report_type="delivery-status", extra="", diag="smtp; 550 5.1.1 User unknown"):
    return raw(f"""From: Mail Delivery System <MAILER-DAEMON@mx.desk.example>
To: help@desk.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.1@mx.desk.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type={report_type}; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.desk.example.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.desk.example

Final-Recipient: rfc822; jane@customer.example
{extra}Action: {action}
Status: {status}
Diagnostic-Code: {diag}

--B
Content-Type: message/rfc822

{ORIGINAL}
--B--
""")


def test_rfc3464_permanent():
    v = check(dsn())
    assert v.hit and v.name == "bounce"
    assert v.data["kind"] == "bounce" and v.data["format"] == "rfc3464"
    assert v.data["recipients"] == ["jane@customer.example"]
    assert v.data["status"] == "5.1.1" and v.data["permanent"] is True
    assert v.data["reason"] == "userunknown"
    assert v.data["original_message_id"] == "1001.42@desk.example"
    assert "Action: failed" in v.reason


def test_rfc3464_delayed_is_temporary():
    v = check(dsn(action="delayed", status="4.4.1", diag="smtp; 421 try again later"))
    assert v.hit and v.data["permanent"] is False and v.data["status"] == "4.4.1"


def test_rfc3464_original_recipient_preferred():
    v = check(dsn(extra="Original-Recipient: rfc822; support@customer.example\n"))
    assert v.data["recipients"] == ["support@customer.example"]


def test_rfc3464_delivered_is_not_a_bounce():
    v = check(dsn(action="delivered", status="2.0.0", diag="smtp; 250 OK"))
    assert not v.hit and v.data["kind"] == "delivery-success"


def test_text_rfc822_headers_give_original_message_id():
    m = raw("""From: MAILER-DAEMON@mx.example
To: help@desk.example
Subject: Returned mail: User unknown
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The original message was received at Mon, 1 Jan 2024
--B
Content-Type: message/delivery-status

Final-Recipient: rfc822; jane@customer.example
Action: failed
Status: 5.2.2

--B
Content-Type: text/rfc822-headers

From: help@desk.example
Message-ID: <1001.43@desk.example>
--B--
""")
    v = check(m)
    assert v.hit and v.data["original_message_id"] == "1001.43@desk.example" and v.data["reason"] == "mailboxfull"


def test_arf_feedback_report_is_not_a_bounce():
    v = check(dsn(report_type="feedback-report"))
    assert not v.hit and v.data["kind"] == "feedback-report"


def test_mdn_read_receipt_is_not_a_bounce():
    m = raw("""From: Jane <jane@customer.example>
To: help@desk.example
Subject: Read: Your request
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="B"

--B
Content-Type: text/plain

Your message was read.
--B
Content-Type: message/disposition-notification

Final-Recipient: rfc822; jane@customer.example
Disposition: manual-action/MDN-sent-manually; displayed
--B--
""")
    v = check(m)
    assert not v.hit and v.data["kind"] == "mdn"


TEXT_BOUNCES = {
    "qmail": ("MAILER-DAEMON@mx.customer.example", "failure notice", """Hi. This is the qmail-send program at mx.customer.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<jane@customer.example>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

""" + ORIGINAL),
    "exim": ("Mail Delivery System <Mailer-Daemon@mx.customer.example>", "Mail delivery failed: returning message to sender",
             """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  jane@customer.example
    SMTP error from remote mail server after RCPT TO:<jane@customer.example>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

""" + ORIGINAL),
    "postfix": ("MAILER-DAEMON@mx.desk.example (Mail Delivery System)", "Undelivered Mail Returned to Sender",
                """This is the mail system at host mx.desk.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<jane@customer.example>: host mx.customer.example[192.0.2.1] said: 550 5.1.1
    <jane@customer.example>: Recipient address rejected: User unknown

""" + ORIGINAL),
    "sendmail": ("Mail Delivery Subsystem <MAILER-DAEMON@mx.customer.example>", "Returned mail: see transcript for details",
                 """The original message was received at Mon, 1 Jan 2024 10:00:00 +0100
from desk.example [192.0.2.9]

   ----- The following addresses had permanent fatal errors -----
<jane@customer.example>
    (reason: 550 5.1.1 <jane@customer.example>... User unknown)

   ----- Transcript of session follows -----
... while talking to mx.customer.example.:
>>> RCPT To:<jane@customer.example>
<<< 550 5.1.1 <jane@customer.example>... User unknown

   ----- Original message follows -----

""" + ORIGINAL),
    "gmail": ("Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Failure)",
              """Delivery to the following recipient failed permanently:

     jane@customer.example

Technical details of permanent failure:
The email account that you tried to reach does not exist.

----- Original message -----

""" + ORIGINAL),
    "exchange": ("System Administrator <postmaster@customer.example>", "Undeliverable: Your request",
                 """Your message

  To:      jane@customer.example
  Subject: Your request

did not reach the following recipient(s):

jane@customer.example on Mon, 1 Jan 2024 10:00:00 +0100
    The e-mail account does not exist at the organization this message was sent to.

"""),
    "yahoo": ("MAILER-DAEMON@yahoo.com", "Failure Notice", """Sorry, we were unable to deliver your message to the following address.

<jane@customer.example>:
Remote host said: 552 5.2.2 Mailbox full [RCPT_TO]

--- Below this line is a copy of the message.

""" + ORIGINAL),
    "domino": ("Postmaster@customer.example", "DELIVERY FAILURE: User jane not listed",
               """Your message

  Subject: Your request

was not delivered to:

  jane@customer.example

because:

  User jane (jane@customer.example) not listed in Domino Directory
"""),
}


@pytest.mark.parametrize("fmt", sorted(TEXT_BOUNCES))
def test_text_bounce_formats(fmt):
    sender, subject, body = TEXT_BOUNCES[fmt]
    m = raw(f"From: {sender}\nTo: help@desk.example\nSubject: {subject}\nMessage-ID: <b.{fmt}@mx.example>\n\n{body}")
    v = check(m)
    assert v.hit, v
    assert v.data["recipients"] == ["jane@customer.example"], v.data
    assert v.data["permanent"] is True
    assert v.data["status"].startswith("5."), v.data
    if "Message-ID: <1001.42@desk.example>" in body:
        assert v.data["original_message_id"] == "1001.42@desk.example"


def test_x_failed_recipients_header():
    m = raw("From: someone@relay.example\nTo: help@desk.example\nSubject: problem\nX-Failed-Recipients: jane@customer.example\n\nsee above\n")
    v = check(m)
    assert v.hit and v.data["recipients"] == ["jane@customer.example"] and "X-Failed-Recipients" in v.reason


def test_delay_warning_text_is_temporary():
    m = raw("""From: Mail Delivery System <MAILER-DAEMON@mx.desk.example>
To: help@desk.example
Subject: Warning: message 1abc-000 delayed 24 hours

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.desk.example.

  jane@customer.example
    host mx.customer.example [192.0.2.1]: Connection timed out

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered.
""")
    v = check(m)
    assert v.hit and v.data["permanent"] is False and v.data["recipients"] == ["jane@customer.example"]


def test_own_message_id_is_not_the_original():
    m = raw("From: MAILER-DAEMON@mx.example\nTo: help@desk.example\nSubject: failure notice\nMessage-ID: <self@mx.example>\n\n"
            "Hi. This is the qmail-send program at mx.example.\n<jane@customer.example>:\nno mailbox\n")
    assert check(m).data["original_message_id"] is None


@pytest.mark.parametrize("headers, subject, body", [
    # a human writing about a bounce is not a bounce
    ("", "Re: Undelivered Mail Returned to Sender", "Hi, I got this bounce, what does it mean?\nuser unknown\n"),
    ("", "Fwd: Mail delivery failed: returning message to sender",
     "---------- Forwarded message ---------\nThis message was created automatically by mail delivery software.\n"),
    ("", "Out of office planning", "Let us plan who is out of office in December.\n"),
    # vacation replies are auto-replies, not bounces
    ("Auto-Submitted: auto-replied\nX-Autoreply: yes\n", "Out of Office: Your request",
     "I am out of the office until Monday. Your message will not be delivered to my colleagues.\n"),
    ("Precedence: bulk\nX-Autoreply: yes\n", "Automatic reply: Your request", "I am on vacation.\n"),
    ("", "Your request", "Hello, your message could not be delivered? I got it fine.\n"),
])
def test_not_bounces(headers, subject, body):
    m = raw(f"From: Jane Doe <jane@customer.example>\nTo: help@desk.example\nSubject: {subject}\n{headers}\n{body}")
    v = check(m)
    assert not v.hit, v


def test_vacation_reply_is_labelled():
    m = raw("From: Jane <jane@customer.example>\nTo: help@desk.example\nSubject: Out of Office: hi\n"
            "Auto-Submitted: auto-replied\n\nI am away.\n")
    v = check(m)
    assert not v.hit and v.data["kind"] == "auto-reply"


def test_check_never_raises_on_garbage():
    for blob in (b"", b"\x00\xff garbage", b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n--x--",
                 b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nAction:\r\n"):
        v = check(parse(blob))
        assert v.name == "bounce"
