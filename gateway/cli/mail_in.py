"""``ticketgate ingest`` (one mail from an MTA pipe) and ``ticketgate process`` (every pending
mail, e.g. after a crash).

``ingest`` runs once per mail, so its exit code is what the MTA acts on: 0 once the mail is
committed, 75 for any trouble of ours before that (the MTA keeps the mail and retries), 64 for
a wrong command line.
"""
from __future__ import annotations

import sys

from gateway.cli.common import load_app
from gateway.cli.exits import EX_OK, EX_TEMPFAIL, EX_USAGE


def cmd_ingest(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.config import ConfigError
    from gateway.failpoints import failpoint
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound, process_pending
    from gateway.store.db import describe_error, is_transient

    raw = sys.stdin.buffer.read()
    if not raw.strip():
        print("ticketgate ingest: no mail on standard input", file=sys.stderr)
        return EX_USAGE
    try:
        app = load_app(args)
    except ConfigError as exc:
        print(f"ticketgate ingest: configuration broken, mail left with the MTA:\n{exc}",
              file=sys.stderr)
        return EX_TEMPFAIL
    except Exception as exc:  # noqa: BLE001
        print(f"ticketgate ingest: cannot open the store, try again later: "
              f"{describe_error(exc)}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        envelope = Envelope(source="pipe", mail_from=args.sender,
                            rcpt_to=list(args.recipient or []), trusted=args.trusted,
                            queue=args.queue,
                            trust_authentication_results=args.trust_authentication_results)
        accepted = accept(app.store, raw, envelope)
    except Exception as exc:  # noqa: BLE001
        # one line with the cause: the MTA logs it, and the SQL with its parameters would
        # quote the whole mail there
        kind = "temporary" if is_transient(exc) else "unexpected"
        print(f"ticketgate ingest: {kind} failure storing the mail, try again later: "
              f"{describe_error(exc)}", file=sys.stderr)
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
        error = (outcome.error or "").splitlines()[0] if outcome.error else ""
        print(f"mail {accepted.inbound_id} stored but not processed yet ({outcome.status}: "
              f"{error})", file=sys.stderr)
    try:
        process_pending(app.store, app.pipeline, limit=args.drain)
    except Exception:  # noqa: BLE001 - best effort backlog drain
        pass
    return EX_OK


def cmd_process(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.processing import process_pending

    app = load_app(args)
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


def add_commands(sub) -> None:
    p = sub.add_parser("ingest", help="read one mail on stdin (MTA pipe) and process it")
    p.add_argument("--sender", help="envelope sender (Postfix: ${sender})")
    p.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")
    p.add_argument("--queue", help="dispatch to this queue unless a filter says otherwise")
    p.add_argument("--trusted", action="store_true", help="honour X-Ticket-* control headers")
    p.add_argument("--trust-authentication-results", action="store_true",
                   help="the MTA removes foreign Authentication-Results (agent proof)")
    p.add_argument("--drain", type=int, default=20,
                   help="also process up to N older pending mails (default 20)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("process", help="process every pending mail (recovery after a crash)")
    p.set_defaults(func=cmd_process)
