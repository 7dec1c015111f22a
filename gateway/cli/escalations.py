"""``ticketgate escalations``: upcoming and breached deadlines, and ``rebuild`` after a calendar
or escalation-time change (every open ticket recomputed, in chunks, with progress)."""
from __future__ import annotations

import re
import sys
import time
from datetime import datetime, timedelta, timezone

from gateway.cli.common import load_app
from gateway.cli.exits import EX_OK, EX_USAGE

KIND_LABELS = {"first_response": "first response", "update": "update", "solution": "solution"}
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 30m, 2h, 1d")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days",
                         "w": "weeks"}[unit]: n})


def upcoming(session, config, *, now: datetime, due: timedelta | None = None,
             queue: str | None = None, limit: int = 200) -> list[dict]:
    """Open tickets with a deadline before now + due (all breached ones included), soonest
    first."""
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import or_, select

    from gateway.sla.clock import ticket_calendar
    from gateway.sla.deadlines import working_minutes_left
    from gateway.store.models import Ticket

    columns = (Ticket.first_response_due, Ticket.update_due, Ticket.solution_due)
    if due is not None:
        query = select(Ticket).where(or_(*(c <= now + due for c in columns)))
    else:
        query = select(Ticket).where(or_(*(c.is_not(None) for c in columns)))
    query = query.limit(limit)
    if queue:
        query = query.where((Ticket.queue == queue) | Ticket.queue.like(f"{queue}::%"))
    rows = []
    for ticket in session.execute(query).scalars():
        cal = ticket_calendar(config, ticket)
        for kind in KIND_LABELS:
            deadline = getattr(ticket, f"{kind}_due")
            if deadline is None or (due is not None and deadline > now + due):
                continue
            rows.append({"number": ticket.number, "queue": ticket.queue, "kind": kind,
                         "deadline": deadline, "breached": now >= deadline,
                         "left": working_minutes_left(deadline, now, cal),
                         "title": ticket.title})
    rows.sort(key=lambda r: r["deadline"])
    return rows


def rebuild(store, config, *, chunk: int = 2000, progress=None) -> int:
    """Recompute the deadlines of every ticket that can escalate. Returns the count."""
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from sqlalchemy import select, update

    from gateway.sla.clock import deadlines_for, sla_fields, stopped_states
    from gateway.store.models import Ticket

    closed = stopped_states(config)
    with store.read_session() as session:
        total = session.execute(select(Ticket.id).where(Ticket.state.not_in(closed))
                                .order_by(Ticket.id)).scalars().all()
    done = 0
    cols = (Ticket.id, Ticket.queue, Ticket.state, Ticket.created, Ticket.first_agent_contact,
            Ticket.last_contact, Ticket.type, Ticket.customer_id, Ticket.customer_user,
            Ticket.priority, Ticket.dynamic_fields, Ticket.solution_paused_minutes)
    for start in range(0, len(total), chunk):
        ids = total[start:start + chunk]
        with store.session() as session:
            params = []
            for row in session.execute(select(*cols).where(Ticket.id.in_(ids))):
                values = deadlines_for(config, row.queue, row.state, row.created,
                                       row.first_agent_contact, row.last_contact,
                                       sla_fields(row), row.dynamic_fields,
                                       row.solution_paused_minutes)
                params.append({"id": row.id, **values})
            if params:
                session.execute(update(Ticket), params)  # bulk UPDATE by primary key
        done += len(ids)
        if progress:
            progress(done, len(total))
    return done


def _bar(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_escalations(args) -> int:
    app = load_app(args)
    if args.action == "rebuild":
        start = time.perf_counter()
        count = rebuild(app.store, app.config, progress=None if args.quiet else _bar)
        print(f"recomputed {count} ticket(s) in {time.perf_counter() - start:.1f} s")
        return EX_OK
    try:
        due = parse_duration(args.due) if args.due else None
    except ValueError as exc:
        print(f"ticketgate escalations: {exc}", file=sys.stderr)
        return EX_USAGE
    now = datetime.now(timezone.utc)
    with app.store.read_session() as session:
        rows = upcoming(session, app.config, now=now, due=due, queue=args.queue)
    print(f"{'ticket':<18} {'deadline (UTC)':<17} {'kind':<15} {'left':>8}  queue / title")
    for r in rows:
        left = "BREACHED" if r["breached"] else f"{r['left']}m"
        print(f"{r['number']:<18} {r['deadline']:%Y-%m-%d %H:%M} {KIND_LABELS[r['kind']]:<15} "
              f"{left:>8}  {r['queue']} / {r['title'][:50]}")
    print(f"{len(rows)} deadline(s)", file=sys.stderr)
    return EX_OK


def add_commands(sub) -> None:
    p = sub.add_parser("escalations", help="upcoming and breached escalation deadlines; "
                                           "'rebuild' recomputes all open tickets")
    p.add_argument("action", nargs="?", choices=["list", "rebuild"], default="list")
    p.add_argument("--queue", help="only this queue (and its sub-queues)")
    p.add_argument("--due", help="only deadlines within this time, e.g. 2h, 30m, 1d")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_escalations)
