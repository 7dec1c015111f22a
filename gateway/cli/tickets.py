"""``ticketgate tickets``, ``show``, ``test-mail`` (a dry run), ``quarantine`` and ``reprocess``:
what became of the mail, and retrying what failed."""
from __future__ import annotations

import json
import sys

from gateway.cli.common import load_app
from gateway.cli.exits import EX_NOINPUT, EX_OK


def cmd_tickets(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import func, select

    from gateway.store.models import Article, Ticket

    app = load_app(args)
    with app.store.read_session() as session:
        query = select(Ticket, func.count(Article.id)).join(Article, isouter=True) \
            .group_by(Ticket.id).order_by(Ticket.id.desc()).limit(args.limit)
        if args.queue:
            query = query.where(Ticket.queue == args.queue)
        if args.state:
            query = query.where(Ticket.state == args.state)
        rows = session.execute(query).all()
        print(f"{'number':<20} {'state':<18} {'queue':<24} {'art':>3}  {'customer':<28} title")
        for ticket, count in rows:
            print(f"{ticket.number:<20} {ticket.state:<18} {ticket.queue[:24]:<24} {count:>3}  "
                  f"{(ticket.customer_user or '')[:28]:<28} {ticket.title[:60]}")
    return EX_OK


def cmd_show(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import select

    from gateway.store.models import Ticket

    app = load_app(args)
    with app.store.read_session() as session:
        ticket = session.execute(select(Ticket).where(Ticket.number == args.number)).scalar()
        if ticket is None:
            print(f"no ticket {args.number}", file=sys.stderr)
            return EX_NOINPUT
        print(f"Ticket {ticket.number}: {ticket.title}")
        for label, value in (("queue", ticket.queue), ("state", ticket.state),
                             ("priority", ticket.priority), ("owner", ticket.owner),
                             ("locked", ticket.locked), ("customer", ticket.customer_user),
                             ("created", ticket.created), ("first response due",
                                                            ticket.first_response_due),
                             ("update due", ticket.update_due),
                             ("solution due", ticket.solution_due)):
            if value not in (None, ""):
                print(f"  {label:<19} {value}")
        if ticket.merged_into_id:
            print(f"  merged into       {session.get(Ticket, ticket.merged_into_id).number}")
        for article in ticket.articles:
            print(f"\n--- article {article.id} ({article.direction}, {article.sender_type}, "
                  f"{article.kind}{', internal' if article.internal else ''}) {article.created}")
            print(f"From: {article.from_addr}\nTo: {article.to_addr}\nSubject: {article.subject}")
            for att in article.attachments:
                print(f"  attachment: {att.filename} ({att.content_type}, {att.blob.size} bytes)")
            body = article.body if args.full else article.body[:800]
            print(f"\n{body}")
        print("\n--- history")
        for entry in ticket.history:
            print(f"{entry.created:%Y-%m-%d %H:%M:%S} {entry.type:<18} {entry.message}")
            if args.trace and entry.data.get("trace"):
                for line in entry.data["trace"]:
                    print(f"{'':>39}[{line['step']}] {line['message']}")
    return EX_OK


def cmd_quarantine(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import select

    from gateway.store.models import InboundMail

    app = load_app(args)
    status = "ignored" if args.ignored else "quarantined"
    with app.store.read_session() as session:
        rows = session.execute(select(InboundMail).where(InboundMail.status == status)
                               .order_by(InboundMail.id)).scalars().all()
        for row in rows:
            print(f"{row.id}\t{row.received_at:%Y-%m-%d %H:%M}\t{row.attempts}\t"
                  f"{row.message_id or '-'}\t{(row.error or '').splitlines()[-1:]}")
        print(f"{len(rows)} {status} mail(s)", file=sys.stderr)
    return EX_OK


def cmd_reprocess(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.processing import process_inbound, requeue

    app = load_app(args)
    for inbound_id in args.ids:
        if not requeue(app.store, inbound_id):
            print(f"{inbound_id}: not quarantined or pending", file=sys.stderr)
            continue
        outcome = process_inbound(app.store, app.pipeline, inbound_id)
        print(f"{inbound_id}\t{outcome.status}\t{outcome.action or ''}\t"
              f"{outcome.ticket_number or ''}\t{outcome.error or ''}")
    return EX_OK


def cmd_test_mail(args) -> int:
    """Run the whole decision on a mail without writing anything; explain it
    (filters/explain.py): pre-filters, rules matched and near misses, what was set, the
    follow-up decision and the result."""
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from filters.explain import explain, render_text
    from gateway.intake import Envelope
    from gateway.mail import parse

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return EX_NOINPUT
    app = load_app(args)
    mail = parse(raw)
    envelope = Envelope(source="test-mail", rcpt_to=list(args.recipient or []),
                        trusted=args.trusted, queue=args.queue,
                        trust_authentication_results=args.trust_authentication_results)
    with app.store.read_session() as session:   # a dry run: nothing is ever written
        decision = app.pipeline.decide(session, mail, envelope)
        if args.json:
            print(json.dumps(explain(decision, app.config), indent=2, default=str,
                             ensure_ascii=False))
        else:
            print(render_text(decision, app.config, verbose=getattr(args, "verbose", False)))
        app.store.close()
    return EX_OK


def add_commands(sub) -> None:
    p = sub.add_parser("tickets", help="list tickets, newest first")
    p.add_argument("--queue")
    p.add_argument("--state")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_tickets)

    p = sub.add_parser("show", help="show one ticket with its articles and history")
    p.add_argument("number")
    p.add_argument("--full", action="store_true", help="whole article bodies")
    p.add_argument("--trace", action="store_true", help="the routing trace of each decision")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("quarantine", help="list mails that failed processing repeatedly")
    p.add_argument("--ignored", action="store_true",
                   help="list the mails a filter or X-Ticket-Ignore dropped instead (kept, "
                        "with the reason)")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("reprocess", help="retry quarantined mails by inbound id")
    p.add_argument("ids", nargs="+", type=int)
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("test-mail", help="dry run: show how a mail would be routed")
    p.add_argument("file", help="mail file, or - for stdin")
    p.add_argument("--recipient", action="append")
    p.add_argument("--queue")
    p.add_argument("--trusted", action="store_true")
    p.add_argument("--trust-authentication-results", action="store_true",
                   help="as from a source whose MTA strips foreign Authentication-Results")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_test_mail)
