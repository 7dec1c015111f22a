"""Outbound queue throughput: N queued mails delivered by the sender worker into an in-process
aiosmtpd sink on 127.0.0.1. Prints mails/s.

    .venv/bin/python bench/outbox.py [N] [--batch B]
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


def main() -> None:
    from aiosmtpd.controller import Controller

    from gateway.app import open_app
    from notifier import message
    from notifier.outbound import delivery, queue
    from tests.conftest import SinkHandler, free_port

    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        conf = tmp / "conf"
        shutil.copytree(ROOT / "conf", conf)
        path = conf / "ticketgate.yaml"
        path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                           f"{controller.port}, batch: {args.batch}}}\n")
        app = open_app(conf, database=f"sqlite:///{tmp / 'bench.db'}")
        t0 = time.perf_counter()
        with app.store.session() as session:
            for i in range(args.n):
                msg = message.build(fqdn=app.config.fqdn, from_addr="support@example.com",
                                    to=[(f"c{i}@customer.test", "Customer")],
                                    subject=f"[Ticket#{i}] Grüße {i}",
                                    body="Hello\n\n" + "text line\n" * 40,
                                    auto_submitted=True)
                queue.queue_mail(session, msg, mail_from="support@example.com",
                                  rcpt_to=[f"c{i}@customer.test"], kind="auto_reply")
        t1 = time.perf_counter()
        results = delivery.drain(app.store, app.config, rounds=10**6)
        t2 = time.perf_counter()
        sent = sum(r.status == "sent" for r in results)
        assert sent == args.n == len(handler.envelopes), (sent, len(handler.envelopes))
        print(f"queued {args.n} in {t1 - t0:.2f}s ({args.n / (t1 - t0):.0f}/s); "
              f"delivered {sent} in {t2 - t1:.2f}s: {sent / (t2 - t1):.0f} mails/s "
              f"(batch {args.batch}, one SMTP connection per batch)")
        app.store.close()
    finally:
        controller.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
