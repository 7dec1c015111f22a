"""SMTP/LMTP listener against real clients (smtplib, raw sockets) on 127.0.0.1: 250 only after
commit, no open relay, size limit, LMTP per-recipient replies, 451 on database trouble,
STARTTLS + AUTH, connection limit, group commit under concurrency."""
from __future__ import annotations

import asyncio
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from gateway.daemon import Daemon
from gateway.store.models import InboundMail, Ticket
from tests.conftest import free_port
from tests.conftest import configure_daemon
from tests.conftest import wait_for as _wait_for
from tests.mails import make_mail

OK, RELAY_DENIED, TOO_BIG, TEMPFAIL, TOO_MANY_CONNS = 250, 550, 552, 451, 421


def set_listeners(conf_dir, *listeners: str) -> None:
    configure_daemon(conf_dir, listeners)


class Running:
    """A Daemon on its own event loop in a thread (as `ticketgate run`, minus signals)."""

    def __init__(self, app, **kw):
        self.daemon = Daemon(app, **kw)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error = None
        self.thread.start()
        if not self.daemon.ready.wait(20):
            raise RuntimeError(f"daemon did not start: {self.error!r}")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            self.daemon.ready.set()

    async def _main(self):
        await self.daemon.start()
        await self.daemon._stopping.wait()
        await self.daemon.stop()

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.daemon.request_stop)
            self.thread.join(30)

    def port(self, name=None):
        return next(l.port for l in self.daemon.listeners if name in (None, l.conf.name))


def wait_for(predicate, timeout=15.0, step=0.05):
    return _wait_for(predicate, timeout, step)


def count(app, *where):
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(InboundMail).where(*where)).scalar()


@pytest.fixture
def running(conf_dir, make_app):
    started = []

    def start(*listeners, **kw):
        set_listeners(conf_dir, *listeners)
        app = make_app()
        r = Running(app, imap=False, **kw)
        started.append(r)
        return app, r

    yield start
    for r in started:
        r.stop()


def test_smtp_mail_becomes_ticket_after_250(running):
    app, r = running("{name: mx, protocol: smtp, port: %d}" % free_port())
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        code, _ = c.ehlo("client.test")
        assert code == OK
        refused = c.sendmail("alice@customer.test", ["support@example.com"],
                             make_mail(subject="Cannot log in", msgid="smtp1@customer.test"))
        assert refused == {}
    # 250 came after the commit: the row is there right now
    with app.store.session() as s:
        row = s.execute(select(InboundMail)).scalar_one()
        assert row.source == "smtp:mx" and row.envelope_to == ["support@example.com"]
        assert row.message_id == "smtp1@customer.test" and row.raw.startswith(b"Received: ")
    ticket = wait_for(lambda: _ticket(app, "Cannot log in"))
    assert ticket.queue == "Unassigned"


def _ticket(app, title):
    with app.store.session() as s:
        return s.execute(select(Ticket).where(Ticket.title == title)).scalar()


def test_no_open_relay_unknown_recipient_550(running):
    app, r = running("{name: mx, port: %d, catch_all_domains: [example.net]}" % free_port())
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            c.sendmail("spammer@evil.test", ["victim@elsewhere.test"], make_mail())
        code, text = exc.value.recipients["victim@elsewhere.test"]
        assert code == RELAY_DENIED and b"5.1.1" in text
        # mixed: the system address and the catch-all domain pass, the stranger does not
        refused = c.sendmail("alice@customer.test", ["hardware@example.com",
                                                     "anyone@example.net", "x@elsewhere.test"],
                             make_mail())
        assert list(refused) == ["x@elsewhere.test"] and refused["x@elsewhere.test"][0] == 550
    with app.store.session() as s:
        row = s.execute(select(InboundMail)).scalar_one()
        assert row.envelope_to == ["hardware@example.com", "anyone@example.net"]


def test_size_limit_552_and_announced(running):
    app, r = running("{name: mx, port: %d, max_message_size: 4000}" % free_port())
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("size") and c.esmtp_features["size"] == "4000"
        big = make_mail(body=("x" * 70 + "\r\n") * 150)
        with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as exc:
            c.sendmail("alice@customer.test", ["support@example.com"], big)
        assert exc.value.smtp_code == TOO_BIG
    # without the SIZE parameter the limit still holds at DATA
    with socket.create_connection(("127.0.0.1", r.port()), timeout=10) as s:
        f = s.makefile("rwb")
        replies = _converse(f, ["EHLO c", "MAIL FROM:<a@customer.test>",
                                "RCPT TO:<support@example.com>", "DATA"])
        assert replies[-1].startswith(b"354")
        f.write(make_mail(body="y" * 70 + ("\r\n" + "y" * 70) * 150) + b".\r\n")
        f.flush()
        assert f.readline().startswith(b"552")
    assert count(app) == 0


def _converse(f, commands):
    """Send SMTP/LMTP commands one by one; return the last line of each reply."""
    f.readline()  # greeting
    out = []
    for command in commands:
        f.write(command.encode() + b"\r\n")
        f.flush()
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                break
        out.append(line)
    return out


def test_lmtp_one_status_per_recipient(running):
    app, r = running("{name: postfix, protocol: lmtp, port: %d, trusted: yes}" % free_port())
    with socket.create_connection(("127.0.0.1", r.port()), timeout=10) as s:
        f = s.makefile("rwb")
        replies = _converse(f, ["LHLO mx.example.com", "MAIL FROM:<alice@customer.test>",
                                "RCPT TO:<support@example.com>", "RCPT TO:<nobody@nowhere.test>",
                                "RCPT TO:<vip@example.com>", "DATA"])
        assert replies[0].startswith(b"250") and replies[2].startswith(b"250")
        assert replies[3].startswith(b"550 5.1.1") and replies[4].startswith(b"250")
        assert replies[5].startswith(b"354")
        f.write(make_mail(to="support@example.com, vip@example.com") + b".\r\n")
        f.flush()
        statuses = [f.readline(), f.readline()]     # one per accepted recipient
        assert all(line.startswith(b"250 2.0.0") for line in statuses), statuses
        f.write(b"QUIT\r\n")
        f.flush()
        assert f.readline().startswith(b"221")
    with app.store.session() as s:
        row = s.execute(select(InboundMail)).scalar_one()
        assert row.source == "lmtp:postfix" and row.trusted is True
        assert row.envelope_to == ["support@example.com", "vip@example.com"]


def test_database_locked_gives_451_never_250(running, monkeypatch, tmp_path):
    import gateway.store.db as db

    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    app, r = running("{name: mx, port: %d}" % free_port(), worker=False)
    path = app.store.engine.url.database
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")          # another process holds the write lock
    try:
        with smtplib.SMTP("127.0.0.1", r.port(), timeout=20) as c:
            with pytest.raises(smtplib.SMTPDataError) as exc:
                c.sendmail("alice@customer.test", ["support@example.com"],
                           make_mail(msgid="locked@customer.test"))
            assert exc.value.smtp_code == TEMPFAIL and b"4.3.0" in exc.value.smtp_error
            # LMTP-style retry by the MTA after the lock is gone
            blocker.execute("ROLLBACK")
            assert c.sendmail("alice@customer.test", ["support@example.com"],
                              make_mail(msgid="locked@customer.test")) == {}
    finally:
        blocker.close()
    assert count(app, InboundMail.message_id == "locked@customer.test") == 1
    assert r.daemon.listeners[0].stats.tempfailed == 1


@pytest.fixture
def cert(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"],
                   check=True, capture_output=True)
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_starttls_and_auth(running, cert, tmp_path):
    users = tmp_path / "smtp-users"
    users.write_text("# submitting clients\nagent1:s3cret\n")
    app, r = running("{name: sub, port: %d, tls_cert: %s, tls_key: %s, auth_users_file: %s}"
                     % (free_port(), cert[0], cert[1], users))
    ctx = ssl.create_default_context(cafile=str(cert[0]))
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls") and not c.has_extn("auth")   # no AUTH in clear text
        c.starttls(context=ctx)
        c.ehlo("client.test")
        assert c.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            c.login("agent1", "wrong")
        assert exc.value.smtp_code == 535
        c.login("agent1", "s3cret")
        assert c.sendmail("agent1@example.com", ["support@example.com"], make_mail()) == {}
    with app.store.session() as s:
        row = s.execute(select(InboundMail)).scalar_one()
        assert row.authenticated_user == "agent1" and b"ESMTPSA" in row.raw.split(b"\r\n\r\n")[0]
    # AUTH is optional unless auth_required: a plain TLS client still delivers
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        c.starttls(context=ctx)
        assert c.sendmail("bob@customer.test", ["support@example.com"], make_mail()) == {}


def test_connection_limit_421(running):
    app, r = running("{name: mx, port: %d, max_connections: 2}" % free_port())
    a = smtplib.SMTP("127.0.0.1", r.port(), timeout=10)
    b = smtplib.SMTP("127.0.0.1", r.port(), timeout=10)
    try:
        with pytest.raises(smtplib.SMTPConnectError) as exc:
            smtplib.SMTP("127.0.0.1", r.port(), timeout=10)
        assert exc.value.smtp_code == TOO_MANY_CONNS
    finally:
        a.quit()
        b.quit()
    wait_for(lambda: r.daemon.listeners[0].active == 0)
    with smtplib.SMTP("127.0.0.1", r.port(), timeout=10) as c:
        assert c.noop()[0] == OK


def test_many_clients_share_commits(running):
    app, r = running("{name: mx, port: %d}" % free_port(), worker=False)
    port = r.port()

    def client(k):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            for i in range(4):
                assert c.sendmail("alice@customer.test", ["support@example.com"],
                                  make_mail(msgid=f"gc{k}.{i}@customer.test")) == {}

    with ThreadPoolExecutor(40) as pool:
        list(pool.map(client, range(40)))
    assert count(app) == 160
    committer = r.daemon.committer
    assert committer.mails == 160 and committer.batches < 160   # several mails per commit


def test_config_errors_name_file_and_line(conf_dir):
    from gateway.app import load_config
    from gateway.config import ConfigError

    set_listeners(conf_dir, "{name: mx, protocol: smtpx, port: 99999}",
                  "{name: mx, port: 25, tls_cert: /nonexistent.pem, queue: Nope, bogus: 1}")
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    text = str(exc.value)
    for needle in ("protocol must be smtp or lmtp", "bad port", "defined twice",
                   "tls_cert and tls_key go together", "unknown queue 'Nope'",
                   "unknown key 'bogus'"):
        assert needle in text, (needle, text)
    assert "ticketgate.yaml:" in text


def test_postmaster_is_accepted(running):
    """RFC 5321 4.5.1: <postmaster> and postmaster@<a domain we receive for> are accepted (and
    become a ticket like mail to a catch-all address); postmaster@ a foreign domain is not."""
    app, r = running("{name: mx, port: %d}" % free_port())
    with socket.create_connection(("127.0.0.1", r.port()), timeout=10) as s:
        f = s.makefile("rwb")
        replies = _converse(f, ["EHLO c", "MAIL FROM:<mailer-daemon@customer.test>",
                                "RCPT TO:<Postmaster>", "RCPT TO:<postmaster@example.com>",
                                "RCPT TO:<postmaster@elsewhere.test>", "DATA"])
        assert [x[:3] for x in replies[1:]] == [b"250", b"250", b"250", b"550", b"354"]
        f.write(make_mail(to="postmaster@example.com", subject="Abuse report",
                          msgid="pm@customer.test") + b".\r\n")
        f.flush()
        assert f.readline().startswith(b"250 2.0.0")
    with app.store.session() as s:
        row = s.execute(select(InboundMail)).scalar_one()
        assert row.envelope_to == ["Postmaster", "postmaster@example.com"]
    ticket = wait_for(lambda: _ticket(app, "Abuse report"))
    assert ticket is not None
