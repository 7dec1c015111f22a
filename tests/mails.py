"""Build small test mails as bytes."""
from __future__ import annotations

import itertools

_seq = itertools.count(1)


def make_mail(subject="Help", frm="Alice Customer <alice@customer.test>",
              to="support@example.com", body="Please help.", msgid=None, in_reply_to=None,
              references=None, headers=None, cc=None) -> bytes:
    msgid = msgid or f"m{next(_seq)}.{id(subject)}@customer.test"
    lines = [f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{msgid}>",
             "Date: Mon, 23 Nov 2026 10:00:00 +0100", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if cc:
        lines.append(f"Cc: {cc}")
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append("References: " + " ".join(f"<{r}>" for r in references))
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()
