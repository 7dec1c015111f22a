#!/usr/bin/env python3
"""`ticketgate escalations rebuild` on N open tickets (default 100,000) in SQLite: inserts the
tickets in bulk, then times the rebuild and prints tickets/s.

    .venv/bin/python bench/escalation_rebuild.py [--tickets 100000]
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    args = parser.parse_args()
    from sqlalchemy import insert

    from gateway.app import open_app
    from gateway.cli.escalations import rebuild
    from gateway.store.models import Ticket

    workdir = Path(tempfile.mkdtemp(prefix="tg-rebuild-"))
    try:
        app = open_app(ROOT / "conf", database=f"sqlite:///{workdir / 'r.db'}")
        rng = random.Random(1)
        queues = [q for q, c in app.config.queues.items() if c.escalation and
                  (c.escalation.first_response or c.escalation.solution)]
        base = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
        start = time.perf_counter()
        with app.store.session() as s:
            rows = [{"number": f"B{i:09d}", "title": f"t{i}", "queue": rng.choice(queues),
                     "state": rng.choice(["new", "open"]), "priority": "3 normal",
                     "locked": False, "dynamic_fields": {},
                     "created": base + timedelta(minutes=rng.randrange(0, 500_000)),
                     "changed": base} for i in range(args.tickets)]
            s.execute(insert(Ticket), rows)
        print(f"inserted {args.tickets} tickets in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        count = rebuild(app.store, app.config, chunk=5000)
        elapsed = time.perf_counter() - start
        print(f"rebuild: {count} open tickets in {elapsed:.1f} s = {count / elapsed:.0f} "
              f"tickets/s (target: 100,000 in well under 60 s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
