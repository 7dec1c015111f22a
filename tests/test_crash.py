"""No mail ever lost, none stored twice: `ticketgate run` is SIGKILLed at random moments (and
once exactly between commit and acknowledgement, by a fail point) while SMTP clients deliver
and while an IMAP folder is drained. Clients retry what got no 250, as an MTA would; every
mail that was acknowledged ends up exactly once, as one inbound row and one article."""
from __future__ import annotations

import os
import random
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from gateway.store.models import Article, InboundMail
from tests.conftest import configure_daemon, free_port
from tests.conftest import wait_for as _wait_for
from tests.mails import make_mail

ROOT = Path(__file__).resolve().parent.parent


configure = configure_daemon


class DaemonProcess:
    def __init__(self, conf_dir, tmp_path):
        self.conf_dir, self.log = conf_dir, tmp_path / "daemon.log"
        self.proc = None
        self.starts = 0

    def start(self, **env):
        environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--conf",
                                          str(self.conf_dir), "run"], stdout=log, stderr=log,
                                         env=environ)
        self.starts += 1

    def ready(self) -> bool:
        return self.log.read_bytes().count(b"daemon ready") >= self.starts

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def wait_for(predicate, timeout=30.0, step=0.02):
    _wait_for(predicate, timeout, step)


def per_message_id(app, model):
    with app.store.session() as s:
        return dict(s.execute(select(model.message_id, func.count())
                              .group_by(model.message_id)).all())


def pending(app) -> int:
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(InboundMail)
                         .where(InboundMail.status == "pending")).scalar()


def check_exactly_once(app, message_ids):
    inbound = per_message_id(app, InboundMail)
    articles = per_message_id(app, Article)
    missing = [m for m in message_ids if inbound.get(m) != 1]
    assert not missing, f"{len(missing)} acknowledged mail(s) not stored exactly once"
    twice = [m for m in message_ids if articles.get(m) != 1]
    assert not twice, f"{len(twice)} mail(s) without exactly one article: {twice[:5]}"
    assert all(n == 1 for n in inbound.values()) and all(n == 1 for n in articles.values())


def test_smtp_kills_lose_nothing_and_store_nothing_twice(conf_dir, tmp_path):
    from gateway.app import open_app

    port = free_port()
    configure(conf_dir, [f"{{name: mx, port: {port}}}"])
    daemon = DaemonProcess(conf_dir, tmp_path)
    daemon.start(TICKETGATE_CRASH_SMTP_AFTER_COMMIT="1")   # dies after its first commit
    wait_for(daemon.ready)
    total, clients = 500, 5
    acked: dict[str, float] = {}
    retries = [0]
    lock = threading.Lock()

    def client(k):
        ids = [f"crash{k}.{i}@customer.test" for i in range(total // clients)]
        conn = None
        for msgid in ids:
            raw = make_mail(subject=f"crash test {msgid}", msgid=msgid)
            while True:
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", port, timeout=10)
                    conn.sendmail("alice@customer.test", ["support@example.com"], raw)
                    with lock:
                        acked[msgid] = time.monotonic()
                    break
                except (OSError, smtplib.SMTPException):
                    with lock:
                        retries[0] += 1
                    try:
                        if conn is not None:
                            conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                    conn = None
                    time.sleep(0.05)       # an MTA would wait minutes; same idea
        if conn is not None:
            conn.quit()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    # kill 1: the fail point (committed, no 250 sent); kills 2 and 3: at random moments
    rng = random.Random(os.environ.get("CRASH_SEED", time.time_ns()))
    wait_for(daemon.exited, timeout=20)
    daemon.start()
    for target in sorted(rng.sample(range(80, total - 80), 2)):
        wait_for(lambda: daemon.ready() and len(acked) >= target, timeout=40)
        time.sleep(rng.uniform(0, 0.05))
        daemon.kill()
        time.sleep(rng.uniform(0, 0.3))
        daemon.start()
    for t in threads:
        t.join(60)
    assert len(acked) == total
    app = open_app(conf_dir)
    wait_for(lambda: daemon.ready() and pending(app) == 0, timeout=40)
    assert daemon.stop() == 0
    print(f"\n{total} mails, {daemon.starts - 1} kills, {retries[0]} client retries, "
          f"{time.monotonic() - t0:.1f}s")
    assert retries[0] >= 3
    check_exactly_once(app, list(acked))


def test_imap_kills_lose_nothing_and_store_nothing_twice(conf_dir, tmp_path, dovecot):
    from gateway.app import open_app

    total = 300
    c = dovecot.client()
    for folder in ("INBOX", "Archive"):
        c.select_folder(folder)
        if c.search(["ALL"]):
            c.add_flags(c.search(["ALL"]), [b"\\Deleted"])
            c.expunge()
    ids = [f"imapcrash{i}@customer.test" for i in range(total)]
    for msgid in ids:
        c.append("INBOX", make_mail(subject=f"imap crash {msgid}", msgid=msgid))
    secret = tmp_path / "pw"
    secret.write_text(dovecot.password)
    configure(conf_dir, accounts=[
        f"{{name: helpdesk, host: 127.0.0.1, port: {dovecot.port}, tls: none, "
        f"user: {dovecot.user}, password_file: {secret}, after: 'move:Archive', "
        f"batch_size: 10}}"])
    app = open_app(conf_dir)
    daemon = DaemonProcess(conf_dir, tmp_path)
    t0 = time.monotonic()
    daemon.start(TICKETGATE_CRASH_IMAP_AFTER_ACCEPT="1")   # committed, not moved: dies
    wait_for(daemon.exited, timeout=20)
    assert len(per_message_id(app, InboundMail)) == 10
    rng = random.Random(os.environ.get("CRASH_SEED", time.time_ns()))
    for _ in range(2):                                       # random kills while processing
        daemon.start()
        wait_for(daemon.ready, timeout=20)
        time.sleep(rng.uniform(0.05, 1.0))
        daemon.kill()
    daemon.start()

    def inbox_empty():
        c.noop()
        c.select_folder("INBOX", readonly=True)
        return not c.search(["ALL"])
    wait_for(lambda: daemon.ready() and inbox_empty() and pending(app) == 0, timeout=45)
    assert daemon.stop() == 0
    c.select_folder("Archive", readonly=True)
    archived = len(c.search(["ALL"]))
    c.logout()
    print(f"\n{total} IMAP mails, 3 kills, {time.monotonic() - t0:.1f}s")
    assert archived == total
    check_exactly_once(app, ids)
