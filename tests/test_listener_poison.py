"""One mail the database refuses must not fail the other mails of its group commit (issue 11
point 6): on SQLite and PostgreSQL, a trigger refuses rows carrying a marker header for real;
the refused mail gets 451, every other mail of the same group commit gets 250 and is stored."""
from __future__ import annotations

import smtplib
import sqlite3
import threading

import psycopg
import pytest

from gateway.store.models import InboundMail
from tests.conftest import free_port
from tests.mails import make_mail
from tests.test_smtp_listener import count, running, wait_for  # noqa: F401 - fixture

GOOD_CLIENTS = 12
MARKER = b"X-Poison: refuse-me"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ticketgate.db'}"
    return request.getfixturevalue("postgres_url")


class Database:
    """A second, plain connection to the store's database: installs the refusing trigger and
    holds a lock on inbound_mail so that the mails of all clients queue up into one group."""

    def __init__(self, app):
        url = app.store.engine.url
        self.sqlite = url.get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn = sqlite3.connect(url.database, isolation_level=None)
            self.conn.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON inbound_mail "
                f"WHEN instr(NEW.raw, X'{MARKER.hex()}') > 0 "
                "BEGIN SELECT RAISE(ABORT, 'refused by the poison trigger'); END")
        else:
            self.conn = psycopg.connect(host=url.host, port=url.port, user=url.username,
                                        dbname=url.database, autocommit=True)
            self.conn.execute(
                "CREATE FUNCTION tg_poison() RETURNS trigger AS $$ BEGIN "
                f"IF position('\\x{MARKER.hex()}'::bytea in NEW.raw) > 0 THEN "
                "RAISE EXCEPTION 'refused by the poison trigger'; END IF; RETURN NEW; END "
                "$$ LANGUAGE plpgsql")
            self.conn.execute("CREATE TRIGGER poison BEFORE INSERT ON inbound_mail "
                              "FOR EACH ROW EXECUTE FUNCTION tg_poison()")

    def lock(self):
        if self.sqlite:
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            self.conn.execute("BEGIN")
            self.conn.execute("LOCK TABLE inbound_mail IN EXCLUSIVE MODE")

    def unlock(self):
        self.conn.execute("ROLLBACK")

    def close(self):
        self.conn.close()


def test_poison_mail_in_a_group_commit_fails_alone(running):
    app, r = running("{name: mx, port: %d}" % free_port(), worker=False)
    port, committer = r.port(), r.daemon.committer
    db = Database(app)
    results: dict[str, int] = {}

    def send(name, raw):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                c.sendmail("alice@customer.test", ["support@example.com"], raw)
                results[name] = 250
        except smtplib.SMTPDataError as exc:
            results[name] = exc.smtp_code

    def good(k):
        return make_mail(subject=f"good {k}", msgid=f"good{k}@customer.test")

    poison = MARKER + b"\r\n" + make_mail(subject="poison", msgid="poison@evil.test")
    db.lock()
    try:
        # the first mail's commit waits for the lock; everything after it queues as ONE group
        threads = [threading.Thread(target=send, args=(f"good{k}", good(k)))
                   for k in range(GOOD_CLIENTS)]
        threads[0].start()
        wait_for(lambda: committer._queue == [] and committer.last_submit > 0)
        for t in threads[1:]:
            t.start()
        wait_for(lambda: len(committer._queue) == GOOD_CLIENTS - 1)
        bad = threading.Thread(target=send, args=("poison", poison))
        bad.start()
        wait_for(lambda: len(committer._queue) == GOOD_CLIENTS)
    finally:
        db.unlock()
    for t in [*threads, bad]:
        t.join(60)
    db.close()
    assert results.pop("poison") == 451
    assert results == {f"good{k}": 250 for k in range(GOOD_CLIENTS)}
    assert count(app) == GOOD_CLIENTS
    assert count(app, InboundMail.message_id == "poison@evil.test") == 0
    assert committer.retried_alone == 1 and committer.mails == GOOD_CLIENTS
    # the poison client may retry later (451 is temporary); the listener keeps serving
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        assert c.sendmail("bob@customer.test", ["support@example.com"], good("late")) == {}
