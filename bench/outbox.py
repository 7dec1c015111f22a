#!/usr/bin/env python3
"""Outbound throughput: N queued mails delivered to an in-process aiosmtpd sink on 127.0.0.1
through the real sender worker (claim with lease, aiosmtplib, record). Prints mails/s.

    .venv/bin/python bench/outbox.py [--mails 2000]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000)
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    from gateway.app import open_app
    from notifier import message
    from notifier.outbox import drain, queue_mail

    class Count:
        n = 0

        async def handle_DATA(self, server, session, envelope):
            Count.n += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    workdir = Path(tempfile.mkdtemp(prefix="tg-outbox-"))
    try:
        conf = workdir / "conf"
        shutil.copytree(ROOT / "conf", conf)
        main_conf = conf / "ticketgate.yaml"
        main_conf.write_text(main_conf.read_text() +
                             f"\noutbound:\n  host: 127.0.0.1\n  port: {port}\n  batch: 200\n")
        app = open_app(conf, database=f"sqlite:///{workdir / 'o.db'}")
        with app.store.session() as session:
            for i in range(args.mails):
                msg = message.build(fqdn="bench.test", from_addr="support@example.com",
                                    to=[(f"c{i}@customer.test", "")], subject=f"mail {i}",
                                    body="hello\n" * 20, auto_submitted=True)
                queue_mail(session, msg, mail_from="support@example.com",
                           rcpt_to=[f"c{i}@customer.test"], kind="auto_reply")
        start = time.perf_counter()
        results = drain(app.store, app.config, rounds=10_000)
        elapsed = time.perf_counter() - start
        sent = sum(r.status == "sent" for r in results)
        print(f"outbox: {sent}/{args.mails} mails delivered to the sink in {elapsed:.2f} s = "
              f"{sent / elapsed:.0f} mails/s (sink counted {Count.n})")
    finally:
        controller.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
