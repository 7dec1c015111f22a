"""Lines over 1,000 bytes in DATA (issue 11 point 4): accepted within the size limit and stored
byte-exact, for every real corpus mail that has such a line (found by scanning, not by name)."""
from __future__ import annotations

import re
import smtplib
import socket

import pytest
from sqlalchemy import select

from gateway.store.models import InboundMail
from tests.conftest import free_port
from tests.corpus import MAIL_DIRS, corpus_dir, mail_files
from tests.mails import make_mail
from tests.test_smtp_listener import _converse, count, running  # noqa: F401 - fixture

RFC5321_LINE = 998     # octets of text per line a sender may use (RFC 5321 4.5.3.1.6)


def _wire(data: bytes) -> bytes:
    """What smtplib puts on the wire (before dot-stuffing): CRLF line ends, a final CRLF."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def long_line_mails() -> list:
    out = []
    for sub in MAIL_DIRS:
        for path in mail_files(sub):
            data = path.read_bytes()
            if any(len(line) > RFC5321_LINE for line in _wire(data).split(b"\r\n")):
                out.append(path)
    return out


def test_corpus_mails_with_long_lines_are_stored_byte_exact(running):
    if not corpus_dir().exists():
        pytest.skip(f"test corpus not available: {corpus_dir()}")
    paths = long_line_mails()
    assert paths, "the corpus has no mail with a line over 998 bytes"
    app, r = running("{name: mx, port: %d}" % free_port(), worker=False)
    refused = {}
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=30) as c:
        for path in paths:
            try:
                c.sendmail("bounces@customer.test", ["support@example.com"],
                           _wire(path.read_bytes()))
            except smtplib.SMTPDataError as exc:
                refused[str(path)] = (exc.smtp_code, exc.smtp_error[:60])
    assert refused == {}
    with app.store.session() as s:
        stored = s.execute(select(InboundMail.raw).order_by(InboundMail.id)).scalars().all()
    assert len(stored) == len(paths)
    for path, raw in zip(paths, stored):
        received, rest = raw.split(b"\r\n\t", 1)[0], raw
        assert received.startswith(b"Received: from ")
        assert rest.endswith(_wire(path.read_bytes())), path        # byte-exact after Received
    print(f"\n{len(paths)} corpus mails with lines over {RFC5321_LINE} bytes: all stored")


def test_long_line_limits(running):
    app, r = running("{name: mx, port: %d, max_message_size: 200000}" % free_port(),
                     worker=False)
    with socket.create_connection(("127.0.0.1", r.port()), timeout=20) as s:
        f = s.makefile("rwb")
        replies = _converse(f, ["EHLO c", "MAIL FROM:<a@customer.test>",
                                "RCPT TO:<support@example.com>", "DATA"])
        assert replies[-1].startswith(b"354")
        # one 150,000-byte line (e.g. base64 without line breaks) within the size limit: 250
        long_body = "A" * 150_000
        f.write(make_mail(body=long_body, msgid="long@customer.test") + b".\r\n")
        f.flush()
        assert f.readline().startswith(b"250 2.0.0")
        # a line longer than the size limit is "too big" (552), not "line too long" (500)
        for command in (b"MAIL FROM:<a@customer.test>", b"RCPT TO:<support@example.com>",
                        b"DATA"):
            f.write(command + b"\r\n")
            f.flush()
            assert f.readline()[:1] in (b"2", b"3")
        f.write(b"Subject: huge\r\n\r\n" + b"B" * 300_000 + b"\r\n.\r\n")
        f.flush()
        assert f.readline().startswith(b"552")
        # command lines keep their limit (512 + parameters): the session goes on afterwards
        f.write(b"NOOP " + b"x" * 5000 + b"\r\n")
        f.flush()
        assert f.readline().startswith(b"500")
        f.write(b"NOOP\r\n")
        f.flush()
        assert f.readline().startswith(b"250")
    assert count(app) == 1
    with app.store.session() as s:
        raw = s.execute(select(InboundMail.raw)).scalar_one()
    assert long_body.encode() + b"\r\n" in raw
