"""The ``ticketgate`` command.

Exit codes follow sysexits(3), which MTAs understand: 0 done, 64 usage error, 75 temporary
failure (the MTA keeps the mail and retries), 78 configuration error (check-config).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

EX_OK, EX_USAGE, EX_DATAERR, EX_SOFTWARE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 65, 70, 75, 78


def default_conf() -> str:
    env = os.environ.get("TICKETGATE_CONF")
    if env:
        return env
    if Path("conf/ticketgate.yaml").exists():
        return "conf"
    return "/etc/ticketgate"


def _load(args):
    """Load config and store; returns (config, store) or raises ConfigError."""
    from gateway.app import open_app

    return open_app(args.conf, database=getattr(args, "database", None))


def cmd_check_config(args) -> int:
    from gateway.app import PARTS, load_config
    from gateway.config import ConfigError

    if args.defaults:
        from gateway.config.defaults import render_defaults

        print(render_defaults(PARTS.sections), end="")
        return EX_OK
    try:
        config = load_config(args.dir or args.conf)
    except ConfigError as exc:
        print(f"ticketgate: configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EX_CONFIG
    print(f"configuration ok: {config.dir} ({len(config.queues)} queues, {len(config.agents)} "
          f"agents, {len(config.calendars)} calendars, {len(config.filters)} filter rules)")
    return EX_OK


def cmd_ingest(args) -> int:
    from gateway.config import ConfigError
    from gateway.failpoints import failpoint
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound, process_pending
    from gateway.store.db import is_transient

    raw = sys.stdin.buffer.read()
    if not raw.strip():
        print("ticketgate ingest: no mail on standard input", file=sys.stderr)
        return EX_USAGE
    try:
        app = _load(args)
    except ConfigError as exc:
        print(f"ticketgate ingest: configuration broken, mail left with the MTA:\n{exc}",
              file=sys.stderr)
        return EX_TEMPFAIL
    except Exception as exc:  # noqa: BLE001
        print(f"ticketgate ingest: cannot open the store, try again later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        envelope = Envelope(source="pipe", mail_from=args.sender,
                            rcpt_to=list(args.recipient or []), trusted=args.trusted,
                            queue=args.queue)
        accepted = accept(app.store, raw, envelope)
    except Exception as exc:  # noqa: BLE001
        kind = "temporary" if is_transient(exc) else "unexpected"
        print(f"ticketgate ingest: {kind} failure storing the mail, try again later: {exc}",
              file=sys.stderr)
        return EX_TEMPFAIL
    failpoint("AFTER_ACCEPT")
    # The mail is committed: from here on we exit 0 whatever happens; a mail we could not
    # process now stays pending (or quarantined) in the store, never lost.
    if accepted.duplicate:
        print(f"duplicate of inbound mail {accepted.inbound_id}: nothing to do", file=sys.stderr)
    outcome = process_inbound(app.store, app.pipeline, accepted.inbound_id)
    if outcome.status in ("done", "ignored"):
        print(f"{outcome.action} {outcome.ticket_number or ''}".strip())
    elif outcome.status != "skipped":
        print(f"mail {accepted.inbound_id} stored but not processed yet ({outcome.status}: "
              f"{outcome.error})", file=sys.stderr)
    try:
        process_pending(app.store, app.pipeline, limit=args.drain)
    except Exception:  # noqa: BLE001 - best effort backlog drain
        pass
    return EX_OK


def cmd_process(args) -> int:
    from gateway.processing import process_pending

    app = _load(args)
    total = 0
    while True:
        outcomes = process_pending(app.store, app.pipeline, limit=500)
        for o in outcomes:
            print(f"{o.inbound_id}\t{o.status}\t{o.action or ''}\t{o.ticket_number or ''}"
                  f"\t{o.error or ''}")
        total += len(outcomes)
        if not outcomes or any(o.status == "transient" for o in outcomes) or \
                all(o.status in ("failed",) for o in outcomes):
            break
    print(f"processed {total} mail(s)", file=sys.stderr)
    return EX_OK


def build_parser() -> argparse.ArgumentParser:
    from gateway import commands

    parser = argparse.ArgumentParser(prog="ticketgate", description=__doc__.splitlines()[1])
    parser.add_argument("--conf", default=default_conf(), help="configuration directory")
    parser.add_argument("--database", help="override the database URL from the configuration")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a configuration directory (like nginx -t)")
    p.add_argument("dir", nargs="?")
    p.add_argument("--defaults", action="store_true",
                   help="print every key with its default and meaning (like postconf -d)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("ingest", help="read one mail on stdin (MTA pipe) and process it")
    p.add_argument("--sender", help="envelope sender (Postfix: ${sender})")
    p.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")
    p.add_argument("--queue", help="dispatch to this queue unless a filter says otherwise")
    p.add_argument("--trusted", action="store_true", help="honour X-Ticket-* control headers")
    p.add_argument("--drain", type=int, default=20,
                   help="also process up to N older pending mails (default 20)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("process", help="process every pending mail (recovery after a crash)")
    p.set_defaults(func=cmd_process)
    commands.add_commands(sub)
    for name in COMMAND_MODULES:   # imported here: a command pays only for what it runs
        importlib.import_module(name).add_commands(sub)
    return parser


# The sub-commands of each part of ticketgate: module.add_commands(subparsers), in this order.
COMMAND_MODULES = ("gateway.daemon_commands", "filters.commands", "notifier.commands",
                   "gateway.escalation_commands")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EX_USAGE if exc.code not in (0, None) else EX_OK
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from gateway.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ticketgate: configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EX_CONFIG
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
