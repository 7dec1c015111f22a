"""The outbound queue survives SIGKILLs: ``ticketgate outbox send`` processes are killed while
they deliver 500 queued mails into an aiosmtpd sink, half of them at the worst moment (a fail
point right after a server's 250, before it is recorded), half at random moments. Afterwards
every row is sent, every mail reached the sink, at most one mail per kill arrived twice, and
the whole run is bounded in time. On SQLite and on PostgreSQL."""
from __future__ import annotations

import email
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.store.models import OutboundMail
from notifier import message
from notifier.outbound import queue

ROOT = Path(__file__).resolve().parent.parent
MAILS, KILLS, LEASE = 500, 10, 2


def statuses(app) -> Counter:
    with app.store.session() as s:
        return Counter(dict(s.execute(select(OutboundMail.status, func.count())
                                      .group_by(OutboundMail.status)).all()))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, db_url):
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else db_url


def test_kills_while_sending_give_at_most_one_duplicate_each_and_nothing_stuck(
        conf_dir, make_app, smtp_sink, database):
    db_url = database
    controller, handler = smtp_sink
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                       f"{controller.port}, lease: {LEASE}, batch: 20, "
                                       f"timeout: 10}}\n")
    app = make_app(database=db_url)
    with app.store.session() as session:
        for i in range(MAILS):
            msg = message.build(fqdn=app.config.fqdn, from_addr="support@example.com",
                                to=[(f"c{i}@customer.test", "Customer")],
                                subject=f"[Ticket#{i}] reply {i}", body="Hello\n",
                                auto_submitted=True)
            queue.queue_mail(session, msg, mail_from="support@example.com",
                             rcpt_to=[f"c{i}@customer.test"], kind="auto_reply")
    argv = [sys.executable, "-m", "gateway.cli", "--conf", str(conf_dir),
            "--database", db_url, "outbox", "send"]
    rng = random.Random(11)
    started = time.monotonic()
    kills = 0
    for k in range(KILLS):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if k % 2 == 0:
            env["TICKETGATE_CRASH_OUTBOX_AFTER_250"] = "1"   # dies right after a 250
        sender = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        if k % 2 == 1:
            before = len(handler.envelopes)
            while len(handler.envelopes) == before and sender.poll() is None \
                    and time.monotonic() - started < 50:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))         # somewhere in the middle of sending
            sender.send_signal(signal.SIGKILL)
        sender.wait(30)
        kills += sender.returncode == -signal.SIGKILL
    assert kills >= KILLS - 1, "the senders finished before they could be killed"
    # no more crashes: senders run until the leases of the killed ones have ended
    while statuses(app).get("pending") and time.monotonic() - started < 60:
        subprocess.run(argv, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if statuses(app).get("pending"):
            time.sleep(LEASE / 2)
    elapsed = time.monotonic() - started
    assert statuses(app) == {"sent": MAILS}, "stuck rows"
    ids = Counter(email.message_from_bytes(e.content)["Message-ID"] for e in handler.envelopes)
    assert len(ids) == MAILS, "lost mails"
    duplicates = sum(n - 1 for n in ids.values())
    print(f"{kills} kills, {duplicates} duplicates, {elapsed:.1f}s")
    assert duplicates <= kills
    assert elapsed < 60
