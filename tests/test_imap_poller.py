"""IMAP poller against a real Dovecot: drain + move/flag/delete after commit, IDLE wake-up,
reconnect after a server restart, a 2,000-message mailbox drained in UID chunks."""
from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for as _wait_for
from sqlalchemy import func, select

from gateway.ingest.config import AccountConf
from gateway.ingest.imap import Poller
from gateway.processing import process_pending
from gateway.store.models import InboundMail, Ticket
from tests.mails import make_mail


def wait_for(predicate, timeout=15.0, step=0.05):
    return _wait_for(predicate, timeout, step)


def count(app, *where):
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(InboundMail).where(*where)).scalar()


@pytest.fixture
def mailbox(dovecot):
    """An empty INBOX and Archive; yields the Dovecot server."""
    def empty():
        c = dovecot.client()
        for folder in ("INBOX", "Archive"):
            c.select_folder(folder)
            uids = c.search(["ALL"])
            if uids:
                c.add_flags(uids, [b"\\Deleted"])
                c.expunge()
        c.logout()
    empty()
    yield dovecot
    empty()


@pytest.fixture
def account(mailbox, tmp_path):
    secret = tmp_path / "imap-password"
    secret.write_text(mailbox.password + "\n")

    def make(**kw):
        values = dict(name="helpdesk", host="127.0.0.1", port=mailbox.port, tls="none",
                      user=mailbox.user, password_file=str(secret), after="move:Archive",
                      queue="Hardware", poll_interval=1)
        values.update(kw)
        return AccountConf(**values)
    return make


@pytest.fixture
def pollers():
    started = []
    yield started
    for p in started:
        p.stop()


def folder_state(dovecot, folder):
    c = dovecot.client()
    c.select_folder(folder, readonly=True)
    uids = c.search(["ALL"])
    flags = c.get_flags(uids) if uids else {}
    c.logout()
    return uids, flags


def test_drain_move_to_archive_after_commit(app, account, mailbox, pollers):
    c = mailbox.client()
    for i in range(3):
        c.append("INBOX", make_mail(subject=f"Keyboard broken {i}", msgid=f"imap{i}@customer.test"))
    c.logout()
    poller = Poller(account(), lambda: app.store)
    pollers.append(poller)
    poller.start()
    wait_for(lambda: count(app) == 3)
    wait_for(lambda: not folder_state(mailbox, "INBOX")[0])
    uids, flags = folder_state(mailbox, "Archive")
    assert len(uids) == 3 and all(b"\\Seen" in f for f in flags.values())
    with app.store.session() as s:
        rows = s.execute(select(InboundMail)).scalars().all()
        assert {r.source for r in rows} == {"imap:helpdesk"}
        assert {r.dispatch_queue for r in rows} == {"Hardware"}
    process_pending(app.store, app.pipeline)
    with app.store.session() as s:
        tickets = s.execute(select(Ticket)).scalars().all()
        assert len(tickets) == 3 and {t.queue for t in tickets} == {"Hardware"}
    assert poller.status()["last_error"] is None


def test_seen_mode_flags_only_and_a_second_run_stores_nothing_twice(app, account, mailbox,
                                                                     pollers):
    c = mailbox.client()
    c.append("INBOX", make_mail(msgid="seen1@customer.test"))
    c.logout()
    poller = Poller(account(after="seen"), lambda: app.store)
    poller.client = __import__("gateway.ingest.imap", fromlist=["connect"]).connect(poller.account)
    assert poller.drain("INBOX") == 1
    uids, flags = folder_state(mailbox, "INBOX")
    assert len(uids) == 1 and b"\\Seen" in flags[uids[0]]
    # the daemon died before flagging: unflag, poll again -> dedup, no second row
    c = mailbox.client()
    c.select_folder("INBOX")
    c.remove_flags(uids, [b"\\Seen"])
    c.logout()
    assert poller.drain("INBOX") == 1
    assert count(app) == 1 and poller.duplicates == 1
    # a UID that cannot be fetched is skipped with an error, the rest goes on
    assert poller._fetch([999999]) == [] and poller.fetch_errors == 1
    poller._close()


def test_idle_wakes_up_on_new_mail(app, account, mailbox, pollers):
    poller = Poller(account(poll_interval=600), lambda: app.store)   # only IDLE can be fast
    pollers.append(poller)
    poller.start()
    wait_for(lambda: poller.idle_supported and poller.last_poll)
    time.sleep(0.3)                                # in IDLE now
    t0 = time.monotonic()
    c = mailbox.client()
    c.append("INBOX", make_mail(msgid="idle@customer.test"))
    c.logout()
    wait_for(lambda: count(app, InboundMail.message_id == "idle@customer.test"), timeout=5)
    assert time.monotonic() - t0 < 5


def kill_sessions(port):
    """SIGKILL the imap session processes of the stopped instance (named by its port)."""
    import os
    import signal

    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            if cmd.startswith(f"dovecot-test-{port}/".encode()):
                os.kill(int(pid), signal.SIGKILL)


def test_reconnects_after_server_restart(app, account, mailbox, pollers):
    poller = Poller(account(), lambda: app.store)
    pollers.append(poller)
    poller.start()
    wait_for(lambda: poller.connected and poller.last_poll)
    old_port = mailbox.port
    mailbox.stop()
    kill_sessions(old_port)      # Dovecot leaves running imap sessions alive after a stop
    wait_for(lambda: not poller.connected, timeout=10)
    mailbox.start()                                 # new ports
    poller.account.port = mailbox.port              # as a SIGHUP reload would
    c = mailbox.client()
    c.append("INBOX", make_mail(msgid="after-restart@customer.test"))
    c.logout()
    wait_for(lambda: count(app, InboundMail.message_id == "after-restart@customer.test"),
             timeout=30)
    assert poller.reconnects >= 1 and poller.connected


def test_big_mailbox_drained_in_chunks(app, account, mailbox, pollers):
    n = 2000
    c = mailbox.client()
    t0 = time.monotonic()
    for i in range(n):
        c.append("INBOX", make_mail(subject=f"bulk {i}", msgid=f"bulk{i}@customer.test"))
    c.logout()
    appended = time.monotonic() - t0
    poller = Poller(account(after="delete", batch_size=100), lambda: app.store)
    fetches = []
    poller.client = __import__("gateway.ingest.imap", fromlist=["connect"]).connect(poller.account)
    real_fetch = poller.client.fetch
    poller.client.fetch = lambda uids, what: fetches.append(len(uids)) or real_fetch(uids, what)
    t0 = time.monotonic()
    assert poller.drain("INBOX") == n
    drained = time.monotonic() - t0
    poller._close()
    print(f"\nappend {n}: {appended:.1f}s, drain: {drained:.1f}s ({n / drained:.0f} mails/s)")
    assert count(app) == n
    assert len(fetches) == n // 100 and max(fetches) == 100      # chunks, not one per mail
    assert folder_state(mailbox, "INBOX")[0] == []


@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_tls_modes_with_private_ca(app, account, mailbox, tls, monkeypatch):
    from gateway.ingest.imap import connect

    monkeypatch.setenv("TG_TEST_IMAP_PW", mailbox.password)
    c = mailbox.client()
    c.append("INBOX", make_mail(msgid=f"tls-{tls}@customer.test"))
    c.logout()
    conf = account(tls=tls, port=mailbox.ssl_port if tls == "imaps" else mailbox.port,
                   tls_cafile=mailbox.cafile, password_file=None, password_env="TG_TEST_IMAP_PW")
    poller = Poller(conf, lambda: app.store)
    poller.client = connect(conf)
    try:
        assert poller.drain("INBOX") == 1
    finally:
        poller._close()
    assert count(app, InboundMail.message_id == f"tls-{tls}@customer.test") == 1


def test_secrets_come_from_env_file_or_token_command(tmp_path, monkeypatch):
    from gateway.ingest.imap import secret_of

    monkeypatch.setenv("TG_PW", "from-env")
    assert secret_of(AccountConf("a", "h", "u", password_env="TG_PW")) == ("password", "from-env")
    (tmp_path / "tok").write_text("tok-from-file\n")
    assert secret_of(AccountConf("a", "h", "u", oauth2_token_file=str(tmp_path / "tok"))) == \
        ("oauth2", "tok-from-file")
    assert secret_of(AccountConf("a", "h", "u", oauth2_token_command="echo tok-from-cmd")) == \
        ("oauth2", "tok-from-cmd")
    assert "secret" not in repr(AccountConf("a", "h", "u", password_env="TG_PW"))
