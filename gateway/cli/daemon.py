"""``ticketgate run`` (the daemon: listeners, mail accounts, worker, jobs) and
``ticketgate status`` (is it running, its listeners and accounts, the inbound backlog)."""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import time

from gateway.cli.common import load_app
from gateway.cli.exits import EX_CONFIG, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE


def cmd_run(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.config import ConfigError
    from gateway.daemon import run, setup_logging

    setup_logging(args.verbose)
    faulthandler.register(signal.SIGUSR1)   # kill -USR1 PID: dump every thread's stack

    log = logging.getLogger("ticketgate.daemon")
    try:
        app = load_app(args)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return EX_CONFIG
    except Exception as exc:  # noqa: BLE001 - e.g. the database is down: systemd retries
        log.error("cannot open the store: %s", exc)
        return EX_TEMPFAIL
    return run(app, imap=not args.no_imap, smtp=not args.no_smtp)


def _ago(ts) -> str:
    if not ts:
        return "never"
    return f"{time.time() - ts:.0f}s ago"


def cmd_status(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import func, select

    from gateway.daemon import status_path
    from gateway.store.models import InboundMail

    app = load_app(args)
    path = status_path(app.config)
    daemon = None
    if path.exists():
        try:
            daemon = json.loads(path.read_text())
        except ValueError:
            daemon = None
    with app.store.read_session() as session:
        counts = dict(session.execute(select(InboundMail.status, func.count())
                                      .group_by(InboundMail.status)).all())
    alive = False
    if daemon and daemon.get("running"):
        try:
            os.kill(int(daemon["pid"]), 0)
            alive = True
        except (OSError, ValueError):
            alive = False
    if args.json:
        print(json.dumps({"daemon": daemon, "alive": alive, "inbound": counts}, indent=1))
        return EX_OK if alive else EX_UNAVAILABLE
    if daemon is None:
        print("daemon: no status file (never started?)")
    else:
        state = "running" if alive else "NOT running"
        print(f"daemon: {state} (pid {daemon['pid']}, started {_ago(daemon['started_at'])}, "
              f"status written {_ago(daemon['updated_at'])})")
        for l in daemon.get("listeners", []):
            print(f"  listener {l['name']}: {l['protocol']} {l['host']}:{l['port']}"
                  f"{' starttls' if l['tls'] else ''}{' auth' if l['auth'] else ''} - "
                  f"{l['active_connections']} open, {l['accepted']} accepted, "
                  f"{l['rejected_recipients']} refused rcpt, {l['tempfailed']} tempfailed"
                  + (f", last error {l['last_error']!r} {_ago(l['last_error_at'])}"
                     if l.get("last_error") else ""))
        for a in daemon.get("mail_accounts", []):
            mode = "IDLE" if a["idle"] else "polling" if a["idle"] is False else "?"
            print(f"  mail account {a['name']}: {a['user']}@{a['host']}:{a['port']} "
                  f"{'connected' if a['connected'] else 'DISCONNECTED'} ({mode}), last poll "
                  f"{_ago(a['last_poll'])}, {a['accepted']} accepted, "
                  f"{a['fetch_errors']} fetch errors"
                  + (f", last error {a['last_error']!r} {_ago(a['last_error_at'])}"
                     if a.get("last_error") else ""))
        w = daemon.get("worker", {})
        print(f"  worker: {w.get('processed', 0)} processed, last run {_ago(w.get('last_run'))}")
        if daemon.get("last_reload_error"):
            print(f"  last reload refused: {daemon['last_reload_error']}")
    print("inbound: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    print(f"backlog: {counts.get('pending', 0)} pending, "
          f"{counts.get('quarantined', 0)} quarantined")
    return EX_OK if alive else EX_UNAVAILABLE


def add_commands(sub) -> None:
    p = sub.add_parser("run", help="run the daemon: SMTP/LMTP listeners, IMAP poller, worker")
    p.add_argument("--no-imap", action="store_true", help="do not poll mail accounts")
    p.add_argument("--no-smtp", action="store_true", help="do not open listeners")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("status", help="daemon state, listeners, mail accounts, inbound backlog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

