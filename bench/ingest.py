#!/usr/bin/env python3
"""Ingest throughput: N generated mails in-process (accept + process, one commit each, as the
daemon does) and through the CLI pipe (``ticketgate ingest``, one process per mail, as an MTA
pipe does). Prints mails/s, peak memory and the ratio to the reference figures below.

    .venv/bin/python bench/ingest.py            # 2000 in-process, 50 via CLI
    .venv/bin/python bench/ingest.py --mails 5000 --cli-mails 100
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE = {"django-helpdesk 2.6.1": 40.0, "Request Tracker 5": 9.0}
TARGET = 1000.0


def generate(n: int, seed: int = 1, prefix: str = "bench") -> list[bytes]:
    """A realistic mix: 60% new tickets, 30% follow-ups by subject, 10% by References;
    a third multipart with a small attachment."""
    rng = random.Random(seed)
    mails = []
    for i in range(n):
        kind = rng.random()
        subject = f"Printer {i} does not work"
        extra = ""
        if kind > 0.6 and i > 10:
            subject = f"Re: [Ticket#{{TICKET}}] Printer"
        if kind > 0.9 and i > 10:
            extra = f"References: <bench-{rng.randrange(i)}@customer.test>\r\n"
            subject = "Re: Printer"
        head = (f"From: Customer {i % 97} <c{i % 97}@customer.test>\r\nTo: support@example.com\r\n"
                f"Subject: {subject}\r\nMessage-ID: <{prefix}-{i}@customer.test>\r\n{extra}"
                f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n")
        text = "Hello,\r\n\r\n" + "the printer on floor 3 prints blank pages. " * 8 + "\r\n"
        if i % 3 == 0:
            body = (head + "Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text +
                    "--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
                    f"attachment; filename=\"log{i % 5}.bin\"\r\nContent-Transfer-Encoding: "
                    "base64\r\n\r\nAAECAwQFBgcICQoLDA0ODw==\r\n--B--\r\n")
        else:
            body = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
        mails.append(body.encode())
    return mails


def with_ticket_numbers(mails: list[bytes], numbers: list[str], rng) -> list[bytes]:
    return [m.replace(b"{TICKET}", rng.choice(numbers).encode()) if b"{TICKET}" in m else m
            for m in mails]


def bench_in_process(n: int, workdir: Path, batch: int, name: str,
                     notifier: bool = True) -> dict:
    """accept() each mail (one commit each, as a pipe or an IMAP fetch does), then process
    them ``batch`` per transaction (batch 1 = one transaction per mail)."""
    from gateway.app import open_app
    from gateway.intake import accept
    from gateway.processing import process_inbound, process_pending

    app = open_app(ROOT / "conf", database=f"sqlite:///{workdir / name}")
    if not notifier:   # what the gateway itself costs, without the mails it queues
        app.pipeline.after_apply = []
    rng = random.Random(2)
    seed_numbers = [process_inbound(app.store, app.pipeline,
                                    accept(app.store, m).inbound_id).ticket_number
                    for m in generate(10, seed=99, prefix="seed")]
    mails = with_ticket_numbers(generate(n), seed_numbers, rng)
    start = time.perf_counter()
    actions: dict = {}
    if batch == 1:
        for raw in mails:
            out = process_inbound(app.store, app.pipeline, accept(app.store, raw).inbound_id)
            actions[out.action] = actions.get(out.action, 0) + 1
    else:
        for i in range(0, len(mails), batch):
            for raw in mails[i:i + batch]:
                accept(app.store, raw)
            for out in process_pending(app.store, app.pipeline, batch=batch):
                actions[out.action] = actions.get(out.action, 0) + 1
    elapsed = time.perf_counter() - start
    app.store.close()
    return {"mails": n, "seconds": elapsed, "rate": n / elapsed, "actions": actions}


def peak_memory(n: int, workdir: Path) -> float:
    """Peak traced Python memory while ingesting n mails (separate run: tracing is slow)."""
    tracemalloc.start()
    bench_in_process(n, workdir, 50, "mem.db")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_cli(n: int, workdir: Path) -> dict:
    exe = Path(sys.executable).parent / "ticketgate"
    db = f"sqlite:///{workdir / 'cli.db'}"
    mails = [m.replace(b"{TICKET}", b"0") for m in generate(n, seed=3)]
    subprocess.run([exe, "--conf", ROOT / "conf", "--database", db, "check-config"],
                   check=True, capture_output=True)
    start = time.perf_counter()
    for raw in mails:
        subprocess.run([exe, "--conf", ROOT / "conf", "--database", db, "ingest"], input=raw,
                       check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    return {"mails": n, "seconds": elapsed, "rate": n / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--cli-mails", type=int, default=50)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    try:
        for batch, notifier in ((1, True), (50, True), (50, False)):
            inproc = bench_in_process(args.mails, workdir, batch, f"inproc{batch}{notifier}.db",
                                      notifier)
            what = "with" if notifier else "WITHOUT"
            print(f"in-process, {batch:>2} mail(s) per processing transaction, {what} the "
                  f"notifier's auto reply + 3 notifications per ticket: {inproc['mails']} "
                  f"mails in {inproc['seconds']:.2f} s = {inproc['rate']:.0f} mails/s "
                  f"({inproc['actions']})")
            print(f"  target {TARGET:.0f} mails/s: {inproc['rate'] / TARGET:.2f}x; " +
                  "; ".join(f"vs {name} ({rate:.0f}/s): {inproc['rate'] / rate:.1f}x"
                            for name, rate in REFERENCE.items()))
        print(f"peak traced Python memory for {min(args.mails, 500)} mails: "
              f"{peak_memory(min(args.mails, 500), workdir):.1f} MiB")
        if args.cli_mails:
            cli = bench_cli(args.cli_mails, workdir)
            print(f"CLI pipe:   {cli['mails']} mails in {cli['seconds']:.2f} s = "
                  f"{cli['rate']:.1f} mails/s (one Python start-up per mail)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
