"""`ticketgate run` as a real process: sd_notify READY/WATCHDOG, SMTP + IMAP to tickets,
`ticketgate status`, SIGHUP reload (a broken conf keeps the old one), SIGTERM exits 0,
pending mail processed on start; JOBS run by the scheduler."""
from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from gateway.store.models import InboundMail, Ticket
from tests.conftest import configure_daemon, free_port
from tests.conftest import wait_for as _wait_for
from tests.mails import make_mail

ROOT = Path(__file__).resolve().parent.parent
TICKETGATE = [sys.executable, "-m", "gateway.cli"]


def wait_for(predicate, timeout=20.0, step=0.05):
    return _wait_for(predicate, timeout, step)


configure = configure_daemon


class Notify:
    """A NOTIFY_SOCKET like systemd's: collects the datagrams the daemon sends."""

    def __init__(self, tmp_path):
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []
        import threading

        threading.Thread(target=self._read, daemon=True).start()   # like systemd: always reading

    def _read(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except OSError:
                return

    def collect(self):
        return list(self.messages)

    def seen(self, word):
        return any(word in m for m in self.collect())


def start(conf_dir, tmp_path, env=None, notify=None):
    log = open(tmp_path / "daemon.log", "ab")
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    if notify:
        environ.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000")
    proc = subprocess.Popen(TICKETGATE + ["--conf", str(conf_dir), "run"], cwd=tmp_path,
                            stdout=log, stderr=log, env=environ)
    return proc


def db(conf_dir):
    from gateway.app import open_app

    return open_app(conf_dir)


def test_run_smtp_imap_status_reload_and_sigterm(conf_dir, tmp_path, dovecot):
    port = free_port()
    secret = tmp_path / "imap-password"
    secret.write_text(dovecot.password)
    c = dovecot.client()
    for folder in ("INBOX", "Archive"):
        c.select_folder(folder)
        if c.search(["ALL"]):
            c.add_flags(c.search(["ALL"]), [b"\\Deleted"])
            c.expunge()
    c.append("INBOX", make_mail(subject="Mouse dead", msgid="d-imap@customer.test"))
    c.logout()
    configure(conf_dir, [f"{{name: mx, port: {port}}}"],
              [f"{{name: helpdesk, host: 127.0.0.1, port: {dovecot.port}, tls: none, "
               f"user: {dovecot.user}, password_file: {secret}, after: 'move:Archive'}}"])
    notify = Notify(tmp_path)
    proc = start(conf_dir, tmp_path, notify=notify)
    try:
        wait_for(lambda: notify.seen("READY=1"))
        wait_for(lambda: notify.seen("WATCHDOG=1"), timeout=5)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("alice@customer.test", ["support@example.com"],
                       make_mail(subject="Screen flickers", msgid="d-smtp@customer.test"))
        app = db(conf_dir)

        def tickets():
            with app.store.session() as s:
                return set(s.execute(select(Ticket.title)).scalars())
        wait_for(lambda: {"Mouse dead", "Screen flickers"} <= tickets())
        # status: listeners, accounts, backlog
        time.sleep(5.5)   # the status file is rewritten every 5 s
        out = subprocess.run(TICKETGATE + ["--conf", str(conf_dir), "status"],
                             capture_output=True, text=True, env=dict(os.environ,
                                                                      PYTHONPATH=str(ROOT)))
        assert out.returncode == 0, out.stderr
        assert f"listener mx: smtp 127.0.0.1:{port}" in out.stdout
        assert "mail account helpdesk" in out.stdout and "connected (IDLE)" in out.stdout
        assert "backlog: 0 pending, 0 quarantined" in out.stdout
        assert dovecot.password not in out.stdout
        # SIGHUP with a broken conf: every problem logged, old conf kept, mail still flows
        good = (conf_dir / "ticketgate.yaml").read_text()
        (conf_dir / "ticketgate.yaml").write_text(good.replace("default_queue: Unassigned",
                                                               "default_queue: Nowhere"))
        assert proc.poll() is None
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"reload refused" in (tmp_path / "daemon.log").read_bytes())
        assert b"default_queue 'Nowhere'" in (tmp_path / "daemon.log").read_bytes()
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            assert s.sendmail("alice@customer.test", ["support@example.com"],
                              make_mail(msgid="d-after-hup@customer.test")) == {}
        (conf_dir / "ticketgate.yaml").write_text(good)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"configuration reloaded" in (tmp_path / "daemon.log").read_bytes())
        assert proc.poll() is None
        # SIGTERM: clean exit 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert notify.seen("STOPPING=1")
        log = (tmp_path / "daemon.log").read_text()
        assert "Traceback" not in log and dovecot.password not in log
        assert "accepted inbound=" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pending_mail_processed_on_start(conf_dir, tmp_path):
    from gateway.intake import Envelope, accept

    configure(conf_dir, [f"{{name: mx, port: {free_port()}}}"])
    app = db(conf_dir)
    for i in range(3):   # accepted by an earlier run that died before processing
        accept(app.store, make_mail(subject=f"left over {i}"), Envelope(source="smtp:mx"))
    proc = start(conf_dir, tmp_path)
    try:
        def done():
            with app.store.session() as s:
                return s.execute(select(func.count()).select_from(InboundMail)
                                 .where(InboundMail.status == "done")).scalar() == 3
        wait_for(done)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_the_apps_jobs_run_in_a_thread_with_the_app(make_app, conf_dir):
    import dataclasses
    import threading

    from gateway import daemon
    from gateway.app import PARTS
    from gateway.parts import Job

    configure(conf_dir)
    app = make_app()
    calls = []
    job = Job("test job", lambda a: calls.append((a, threading.current_thread().name)), 0.2)
    app.parts = dataclasses.replace(PARTS, jobs=(job,))

    async def main():
        d = daemon.Daemon(app, imap=False)
        await d.start()
        await asyncio.sleep(0.9)
        assert d.status()["jobs"] == ["test job"]
        await d.stop()
    asyncio.run(main())
    assert len(calls) >= 2 and calls[0][0] is app
    assert calls[0][1] != threading.main_thread().name


def test_sd_notify_abstract_and_missing(tmp_path, monkeypatch):
    from gateway.daemon import sd_notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"tg-test-{os.getpid()}"
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    assert sd_notify("WATCHDOG=1") is True
    assert sock.recv(100) == b"WATCHDOG=1"
    sock.close()


def test_check_config_reports_daemon_keys(conf_dir):
    configure(conf_dir, ["{name: mx, port: 2525, max_connections: 0}"],
              ["{name: box, host: imap.example.com, user: u, folders: [INBOX], "
               "after: 'archive'}"])
    out = subprocess.run(TICKETGATE + ["check-config", str(conf_dir)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 78
    for needle in ("max_connections must be positive", "give exactly one of password_file",
                   "after must be seen, delete or move:FOLDER"):
        assert needle in out.stderr, out.stderr
    assert "ticketgate.yaml:" in out.stderr


def test_sigterm_under_load_finishes_in_flight_mails(conf_dir, tmp_path):
    import threading

    port = free_port()
    configure(conf_dir, [f"{{name: mx, port: {port}}}"])
    proc = start(conf_dir, tmp_path)
    acked, failed = [], []

    def client(k):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                for i in range(1000):
                    msgid = f"term{k}.{i}@customer.test"
                    s.sendmail("alice@customer.test", ["support@example.com"],
                               make_mail(msgid=msgid))
                    acked.append(msgid)
        except (OSError, smtplib.SMTPException) as exc:
            failed.append(exc)        # 421 / disconnect: an MTA would retry later

    wait_for(lambda: b"daemon ready" in (tmp_path / "daemon.log").read_bytes())
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 200)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    for t in threads:
        t.join(30)
    assert len(failed) == 8       # every client was cut off, none hung
    from gateway.app import open_app

    app = open_app(conf_dir)
    with app.store.session() as s:
        stored = set(s.execute(select(InboundMail.message_id)).scalars())
    assert set(acked) <= stored   # every 250 is in the database


def test_the_composition_root_does_not_import_the_daemon():
    """A pipe ``ingest`` builds the whole app but never pays for the daemon's imports."""
    import subprocess
    import sys

    code = ("import sys, gateway.app as a; a.load_config('conf'); "
            "print('gateway.daemon' in sys.modules, 'aiosmtpd' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_changed_conf_file_is_reloaded_and_a_broken_one_keeps_the_old(conf_dir, make_app):
    """No SIGHUP needed: editing a file under conf/ reloads it within seconds; a broken edit
    is refused (the old config keeps running) and fixing it is picked up again."""
    from tests.test_smtp_listener import Running, set_listeners

    set_listeners(conf_dir, f"{{name: smtp, protocol: smtp, host: 127.0.0.1, port: {free_port()}}}")
    app = make_app()
    running = Running(app, imap=False)
    try:
        d = running.daemon
        assert app.config.default_queue == "Unassigned"
        path = conf_dir / "ticketgate.yaml"
        good = path.read_text()
        path.write_text(good.replace("default_queue: Unassigned", "default_queue: QA"))
        _wait_for(lambda: d.app.config.default_queue == "QA", timeout=15)
        path.write_text(good.replace("default_queue: Unassigned", "default_queue: Nowhere"))
        _wait_for(lambda: d.last_reload_error is not None, timeout=15)
        assert d.app.config.default_queue == "QA"             # the old config still runs
        (conf_dir / "filters.d" / "99-new.yaml").write_text(
            "- name: new-rule\n  match: {subject: zzz}\n  set: {queue: VIP}\n")
        path.write_text(good)
        _wait_for(lambda: d.app.config.default_queue == "Unassigned" and
                  any(r.name == "new-rule" for r in d.app.config.filters), timeout=15)
    finally:
        running.stop()
