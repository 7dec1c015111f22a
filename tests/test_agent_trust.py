"""What a source is trusted with (issue 11 points 11 and 12): check-config warns about
listeners and accounts that trust what any sender could write, and X-Ticket-Ignore never makes
a mail vanish without a trace."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.store.models import InboundMail
from tests.conftest import configure_daemon
from tests.mails import make_mail
from tests.test_agent_identity import add_agent_auth

BIN = str(Path(sys.executable).parent / "ticketgate")


def check_config(conf_dir) -> tuple[int, str]:
    r = subprocess.run([BIN, "check-config", str(conf_dir)], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def test_trusted_listener_open_to_clients_is_warned_about(conf_dir):
    configure_daemon(conf_dir, listeners=[
        "{name: mx, host: 0.0.0.0, port: 2525, trusted: yes}",
        "{name: postfix, protocol: lmtp, host: 127.0.0.1, port: 2526, trusted: yes}",
        "{name: ar, host: 0.0.0.0, port: 2527, trust_authentication_results: yes}"])
    rc, out = check_config(conf_dir)
    assert rc == 0, out                                   # a warning, not an error
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out
    assert "listener 'mx'" in warnings[0] and "header_checks" in warnings[0]
    assert "listener 'ar'" in warnings[1] and "forge" in warnings[1]
    assert "configuration ok" in out


def test_authentication_results_method_without_a_trusting_listener_is_warned_about(conf_dir):
    add_agent_auth(conf_dir)
    rc, out = check_config(conf_dir)
    assert rc == 0 and "method authentication_results proves nothing" in out, out
    configure_daemon(conf_dir, listeners=[
        "{name: postfix, protocol: lmtp, port: 2526, trust_authentication_results: yes}"])
    rc, out = check_config(conf_dir)
    assert rc == 0 and "warning:" not in out, out


def test_the_shipped_conf_has_no_warning(conf_dir):
    rc, out = check_config(conf_dir)
    assert rc == 0 and "warning:" not in out, out


def test_x_ticket_ignore_keeps_the_mail_and_says_why(app, ingest):
    raw = make_mail(subject="drop me", headers={"X-Ticket-Ignore": "yes"})
    done = ingest(raw, trusted=True)
    assert done.ticket_number is None
    with app.store.read_session() as s:
        row = s.execute(select(InboundMail).order_by(InboundMail.id.desc())).scalars().first()
        assert row.status == "ignored" and row.raw == raw
        assert row.error and "X-Ticket-Ignore" in row.error and "kept" in row.error
        assert any("X-Ticket-Ignore" in line.get("message", "") for line in row.trace)


def test_the_daemon_logs_the_same_warnings_at_start(conf_dir, make_app, caplog):
    import asyncio
    import logging

    from gateway.daemon import Daemon

    configure_daemon(conf_dir, listeners=[
        "{name: mx, host: 127.0.0.1, port: 2525, trusted: yes}"])   # smtp off: never bound
    rc, out = check_config(conf_dir)
    expected = [line.removeprefix("warning: ") for line in out.splitlines()
                if line.startswith("warning:")]
    assert expected, out
    app = make_app()

    async def main():
        d = Daemon(app, imap=False, smtp=False, worker=False)
        await d.start()
        await d.stop()
    with caplog.at_level(logging.WARNING, logger="ticketgate.daemon"):
        asyncio.run(main())
    logged = [r.getMessage() for r in caplog.records if r.name == "ticketgate.daemon"]
    assert [f"config: {w}" for w in expected] == [m for m in logged if m.startswith("config: ")]
