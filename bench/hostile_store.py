#!/usr/bin/env python3
"""Hostile mail in the store: hostile mails (NUL bytes, a bounce saying "timeout" with a NUL,
over-long Message-ID / address / Content-Type) queued in front of good mails, then
``process_pending`` run a few times, as the daemon's worker does. Prints, per run, how many
mails are done, failed, transient and still pending, so "one mail stops the queue" shows as
good mails left pending after every run.

    .venv/bin/python bench/hostile_store.py                       # a temporary SQLite file
    .venv/bin/python bench/hostile_store.py --database postgresql+psycopg://user@host/db
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def hostile() -> list[bytes]:
    def mail(subject, frm="Alice <alice@customer.test>", msgid=None, body="Hello.",
             ctype="text/plain; charset=utf-8"):
        msgid = msgid or f"{abs(hash(subject))}@customer.test"
        return (f"From: {frm}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
                f"Message-ID: <{msgid}>\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\n\r\n"
                f"{body}\r\n").encode()
    return [
        mail("Undelivered Mail", frm="MAILER-DAEMON@mx.test",
             body="Connection timeout\x00 while talking to mx: lock timeout"),
        mail("Hello\x00World"),
        mail("nul msgid", msgid="abc\x00def@customer.test"),
        mail("long msgid", msgid="x" * 1500 + "@customer.test"),
        mail("long address", frm="Someone <" + "a" * 1200 + "@customer.test>"),
        mail("long content type", ctype="text/" + "x" * 190 + "; charset=utf-8"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--good", type=int, default=50, help="good mails behind the hostile ones")
    ap.add_argument("--runs", type=int, default=3, help="process_pending runs")
    args = ap.parse_args()

    from sqlalchemy import func, select

    from gateway.app import open_app
    from gateway.intake import accept
    from gateway.processing import process_pending
    from gateway.store.models import InboundMail

    tmp = Path(tempfile.mkdtemp(prefix="tg-hostile-"))
    conf = tmp / "conf"
    shutil.copytree(ROOT / "conf", conf)
    app = open_app(conf, database=args.database or f"sqlite:///{tmp / 'ticketgate.db'}")
    refused = 0
    for raw in hostile():
        try:
            accept(app.store, raw)
        except Exception as exc:  # noqa: BLE001 - what the sender would get as 451
            refused += 1
            print(f"accept refused (451): {type(exc).__name__}")
    for i in range(args.good):
        accept(app.store, f"From: bob@customer.test\r\nTo: support@example.com\r\nSubject: "
                          f"good {i}\r\nMessage-ID: <good{i}.{time.time()}@c.test>\r\n\r\n"
                          "Please help.\r\n".encode())
    print(f"accepted: {len(hostile()) - refused} hostile, {args.good} good")
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        outcomes = process_pending(app.store, app.pipeline)
        took = time.perf_counter() - started
        with app.store.read_session() as s:
            counts = dict(s.execute(select(InboundMail.status, func.count())
                                    .group_by(InboundMail.status)).all())
        seen = {}
        for o in outcomes:
            seen[o.status] = seen.get(o.status, 0) + 1
        print(f"run {run}: outcomes {seen}  store {counts}  ({took:.2f} s)")
    app.store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
