"""Benchmark the SMTP listener: mails/s accepted and time-to-250 (p50/p99) with 1, 10 and 50
concurrent aiosmtplib clients, then a fixed 200 mails/s load, on a temp SQLite database.

The listener runs as a separate process (`--serve`, the daemon without IMAP) so the client's
CPU does not share the server's GIL; by default without the inbound worker (pure intake:
accept + group commit); `--worker` also processes the mails into tickets meanwhile.

    .venv/bin/python bench/smtp.py                      # full table
    .venv/bin/python bench/smtp.py --mails 1000 --worker
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mail(k: str) -> bytes:
    return (f"From: Alice <alice@customer.test>\r\nTo: support@example.com\r\n"
            f"Subject: bench {k}\r\nMessage-ID: <bench.{k}@customer.test>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\n" + "Please help.\r\n" * 40).encode()


def serve(conf: str, worker: bool) -> None:
    from gateway.app import open_app
    from gateway.daemon import Daemon, setup_logging

    import logging

    setup_logging()
    logging.getLogger("ticketgate").setLevel(logging.WARNING)
    app = open_app(conf)
    asyncio.run(Daemon(app, imap=False, worker=worker).run())


async def closed_loop(port: int, clients: int, total: int, tag: str):
    import aiosmtplib

    latencies: list[float] = []
    per_client = total // clients

    async def client(k: int):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        for i in range(per_client):
            raw = mail(f"{tag}.{k}.{i}")
            t = time.perf_counter()
            await smtp.sendmail("alice@customer.test", ["support@example.com"], raw)
            latencies.append(time.perf_counter() - t)
        await smtp.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return per_client * clients / (time.perf_counter() - t0), latencies


async def open_loop(port: int, rate: float, seconds: float, pool: int):
    """Send at a fixed rate on ``pool`` connections; latency = time to 250."""
    import aiosmtplib

    conns = asyncio.Queue()
    for _ in range(pool):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        conns.put_nowait(smtp)
    latencies: list[float] = []
    late = [0]

    async def one(i, due):
        smtp = await conns.get()
        start = time.perf_counter()
        if start - due > 0.01:
            late[0] += 1
        await smtp.sendmail("alice@customer.test", ["support@example.com"], mail(f"rate.{i}"))
        latencies.append(time.perf_counter() - start)
        conns.put_nowait(smtp)

    tasks, t0 = [], time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not conns.empty():
        await (conns.get_nowait()).quit()
    return n / elapsed, latencies, late[0]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=3000, help="mails per concurrency level")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--worker", action="store_true", help="process into tickets meanwhile")
    parser.add_argument("--serve", nargs=2, metavar=("CONF", "WORKER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1] == "1")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    conf = tmp / "conf"
    shutil.copytree(ROOT / "conf", conf)
    port = free_port()
    text = re.sub(r"\nlisteners:\n(?:  - .*\n)*", "\n", (conf / "ticketgate.yaml").read_text())
    (conf / "ticketgate.yaml").write_text(
        text + f"\nlisteners:\n  - {{name: bench, port: {port}, max_connections: 500}}\n")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(conf),
                               "1" if args.worker else "0"], env=dict(os.environ,
                                                                      PYTHONPATH=str(ROOT)))
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"SMTP listener bench: SQLite WAL, {os.cpu_count()} CPUs, mail "
              f"{len(mail('x'))} bytes, worker {'on' if args.worker else 'off'}")
        print(f"{'clients':>8} {'mails':>6} {'mails/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
        for clients in (1, 10, 50):
            total = args.mails if clients > 1 else min(args.mails, 1000)
            rate, lat = asyncio.run(closed_loop(port, clients, total, f"c{clients}"))
            print(f"{clients:>8} {len(lat):>6} {rate:>8.0f} {pct(lat, 50):>7.1f} "
                  f"{pct(lat, 99):>7.1f}")
        rate, lat, late = asyncio.run(open_loop(port, args.rate, args.seconds, 20))
        print(f"fixed load {args.rate:.0f}/s for {args.seconds:.0f}s on 20 connections: "
              f"{rate:.0f} mails/s, p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
              f"max {max(lat) * 1000:.1f} ms, {late} sent late")
        from gateway.app import open_app
        from sqlalchemy import func, select
        from gateway.store.models import InboundMail

        app = open_app(conf)
        with app.store.session() as s:
            rows = s.execute(select(func.count()).select_from(InboundMail)).scalar()
        print(f"inbound rows stored: {rows}")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
