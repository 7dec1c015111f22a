"""``ticketgate`` as an MTA and an admin run it: exit codes 0/64/75/78, crash recovery,
concurrent pipes, check-config messages, tickets/show output."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mails import make_mail

BIN = str(Path(sys.executable).parent / "ticketgate")


def tg(conf_dir, db_url, *args, stdin=b"", env=None, timeout=60):
    return subprocess.run([BIN, "--conf", str(conf_dir), "--database", db_url, *args],
                          input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def db_path(db_url) -> str:
    return db_url.split("///", 1)[1]


def rows(db_url, sql):
    with sqlite3.connect(db_path(db_url)) as conn:
        return conn.execute(sql).fetchall()


def test_ingest_new_ticket_and_follow_up(conf_dir, db_url):
    r = tg(conf_dir, db_url, "ingest", stdin=make_mail(subject="Monitor flickers"))
    assert r.returncode == 0, r.stderr
    action, number = r.stdout.decode().split()
    assert action == "new_ticket"
    r = tg(conf_dir, db_url, "ingest", stdin=make_mail(subject=f"Re: [Ticket#{number}] x"))
    assert r.returncode == 0 and r.stdout.decode().split() == ["follow_up", number]
    r = tg(conf_dir, db_url, "tickets")
    assert number in r.stdout.decode() and "Monitor flickers" in r.stdout.decode()
    r = tg(conf_dir, db_url, "show", number, "--trace")
    out = r.stdout.decode()
    assert "FollowUp" in out and "[queue]" in out and "subject names" in out


def test_ingest_usage_errors_exit_64(conf_dir, db_url):
    assert tg(conf_dir, db_url, "ingest", stdin=b"").returncode == 64
    assert tg(conf_dir, db_url, "ingest", "--no-such-flag").returncode == 64
    assert tg(conf_dir, db_url, "show").returncode == 64


def test_ingest_broken_config_exits_75_and_names_the_file(conf_dir, db_url):
    (conf_dir / "queues.yaml").write_text("queues:\n  Unassigned: {group: [unclosed\n")
    r = tg(conf_dir, db_url, "ingest", stdin=make_mail())
    assert r.returncode == 75
    assert b"queues.yaml:3: YAML syntax error" in r.stderr
    assert b"unknown queue" not in r.stderr   # no cascade of follow-on errors


def test_ingest_database_locked_exits_75_and_mail_is_not_acknowledged(conf_dir, db_url):
    assert tg(conf_dir, db_url, "ingest", stdin=make_mail()).returncode == 0  # creates the db
    holder = sqlite3.connect(db_path(db_url), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = tg(conf_dir, db_url, "ingest", stdin=make_mail(subject="blocked"),
               env={"TICKETGATE_SQLITE_BUSY_TIMEOUT_MS": "300"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 75, r.stderr
    assert rows(db_url, "select count(*) from inbound_mail") == [(1,)]
    # one line with the cause for the MTA's log: no SQL statement, no parameters (the mail)
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("ticketgate ingest: temporary failure storing the mail")
    assert "database is locked" in lines[0]
    assert "INSERT" not in lines[0] and "parameters" not in lines[0] and "blocked" not in lines[0]


def test_unreachable_postgres_exits_75(conf_dir):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    r = tg(conf_dir, url, "ingest", stdin=make_mail())
    assert r.returncode == 75, r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr


def test_crash_between_commit_and_processing_is_recovered(conf_dir, db_url):
    """Kill the process right after the raw mail is committed; restart makes one article."""
    raw = make_mail(subject="crash")
    r = tg(conf_dir, db_url, "ingest", stdin=raw, env={"TICKETGATE_CRASH_AFTER_ACCEPT": "1"})
    assert r.returncode == -signal.SIGKILL
    assert rows(db_url, "select status from inbound_mail") == [("pending",)]
    assert rows(db_url, "select count(*) from article") == [(0,)]
    r = tg(conf_dir, db_url, "process")
    assert r.returncode == 0
    assert rows(db_url, "select status from inbound_mail") == [("done",)]
    assert rows(db_url, "select count(*) from article") == [(1,)]
    # The MTA never saw exit 0, so it delivers again: still one article.
    r = tg(conf_dir, db_url, "ingest", stdin=raw)
    assert r.returncode == 0 and b"duplicate" in r.stderr
    assert rows(db_url, "select count(*) from article") == [(1,)]


def test_crash_inside_processing_transaction_rolls_back(conf_dir, db_url):
    r = tg(conf_dir, db_url, "ingest", stdin=make_mail(subject="mid"),
           env={"TICKETGATE_CRASH_BEFORE_COMMIT": "1"})
    assert r.returncode == -signal.SIGKILL
    assert rows(db_url, "select count(*) from ticket") == [(0,)]
    assert tg(conf_dir, db_url, "process").returncode == 0
    assert rows(db_url, "select count(*) from ticket") == [(1,)]
    assert rows(db_url, "select count(*) from article") == [(1,)]


def test_concurrent_pipes_get_unique_numbers(conf_dir, db_url):
    assert tg(conf_dir, db_url, "ingest", stdin=make_mail()).returncode == 0
    mails = [make_mail(subject=f"parallel {i}") for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda m: tg(conf_dir, db_url, "ingest", stdin=m), mails))
    assert [r.returncode for r in results] == [0] * 16, [r.stderr for r in results]
    numbers = rows(db_url, "select number from ticket")
    assert len(numbers) == 17 == len(set(numbers))


def test_check_config_ok_and_broken(conf_dir, db_url, tmp_path):
    r = subprocess.run([BIN, "check-config", str(conf_dir)], capture_output=True)
    assert r.returncode == 0 and b"configuration ok" in r.stdout
    (conf_dir / "queues.yaml").write_text(
        "queues:\n"
        "  Unassigned:\n    group: Tier 1\n    follow_up: maybe\n"
        "  Sub::Child:\n    group: Nobody\n    colour: red\n")
    r = subprocess.run([BIN, "check-config", str(conf_dir)], capture_output=True)
    err = r.stderr.decode()
    assert r.returncode == 78
    assert "queues.yaml:4: queue 'Unassigned': follow_up must be one of" in err
    assert "queues.yaml:6: queue 'Sub::Child': unknown group 'Nobody'" in err
    assert "queues.yaml:7: unknown key 'colour'" in err
    assert "parent queue 'Sub' is not defined" in err


def test_crash_hooks_are_inert_without_env(conf_dir, db_url):
    r = tg(conf_dir, db_url, "ingest", stdin=make_mail())
    assert r.returncode == 0


@pytest.mark.parametrize("count", [3])
def test_process_drains_backlog_after_several_crashes(conf_dir, db_url, count):
    for i in range(count):
        tg(conf_dir, db_url, "ingest", stdin=make_mail(subject=f"c{i}"),
           env={"TICKETGATE_CRASH_AFTER_ACCEPT": "1"})
    assert rows(db_url, "select count(*) from inbound_mail where status='pending'") == [(count,)]
    start = time.monotonic()
    assert tg(conf_dir, db_url, "process").returncode == 0
    assert time.monotonic() - start < 30
    assert rows(db_url, "select count(*) from ticket") == [(count,)]


def test_ignored_mails_are_listed_with_their_reason(conf_dir, db_url):
    """An X-Ticket-Ignore mail from a trusted pipe makes no ticket but is kept:
    ``ticketgate quarantine --ignored`` lists it with the reason; plain ``quarantine`` not."""
    mail = make_mail(subject="drop me", headers={"X-Ticket-Ignore": "yes"})
    assert tg(conf_dir, db_url, "ingest", "--trusted", stdin=mail).returncode == 0
    listed = tg(conf_dir, db_url, "quarantine", "--ignored")
    assert listed.returncode == 0 and "1 ignored mail(s)" in listed.stderr.decode()
    assert b"X-Ticket-Ignore" in listed.stdout
    quarantined = tg(conf_dir, db_url, "quarantine")
    assert quarantined.stdout == b"" and "0 quarantined" in quarantined.stderr.decode()
