"""``ticketgate outbox``: list pending, retrying and failed outgoing mail; ``retry ID`` puts a
failed mail back in the queue; ``send`` delivers what is due now."""
from __future__ import annotations

import sys

from gateway.cli.common import load_app
from gateway.cli.exits import EX_DATAERR, EX_OK, EX_USAGE


def cmd_outbox(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import select

    from gateway.store.models import Ticket
    from gateway.store.models import OutboundMail
    from notifier.outbound.delivery import drain
    from notifier.outbound.queue import retry

    app = load_app(args)
    if args.action == "retry":
        if not args.id:
            print("ticketgate outbox retry: which ID?", file=sys.stderr)
            return EX_USAGE
        if not retry(app.store, args.id):
            print(f"outbound mail {args.id}: not found or already sent", file=sys.stderr)
            return EX_DATAERR
        print(f"outbound mail {args.id} queued again")
        return EX_OK
    if args.action == "send":
        results = drain(app.store, app.config)
        print(f"{sum(r.status == 'sent' for r in results)} sent, "
              f"{sum(r.status == 'retry' for r in results)} to retry, "
              f"{sum(r.status == 'failed' for r in results)} failed")
        return EX_OK
    statuses = ("pending", "failed", "sent") if args.all else ("pending", "failed")
    with app.store.read_session() as session:
        rows = session.execute(
            select(OutboundMail, Ticket.number).join(Ticket, isouter=True)
            .where(OutboundMail.status.in_(statuses)).order_by(OutboundMail.id)).all()
        print(f"{'id':>6} {'status':<9} {'tries':>5} {'next attempt':<17} {'kind':<22} "
              f"{'ticket':<18} to / last error")
        for row, number in rows:
            status = "retrying" if row.status == "pending" and row.attempts else row.status
            print(f"{row.id:>6} {status:<9} {row.attempts:>5} "
                  f"{row.next_attempt:%Y-%m-%d %H:%M} {row.kind:<22} {number or '-':<18} "
                  f"{', '.join(row.rcpt_to)} {(row.last_error or '')[:60]}")
    print(f"{len(rows)} mail(s)", file=sys.stderr)
    return EX_OK


def add_commands(sub) -> None:
    p = sub.add_parser("outbox", help="outgoing mail: list, retry ID, send")
    p.add_argument("action", nargs="?", choices=["list", "retry", "send"], default="list")
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="also list sent mail")
    p.set_defaults(func=cmd_outbox)
