"""Slow clients must not lock out normal ones (issue 11 point 7): 100 slowloris connections
from 10 addresses (a byte every 5 s, half before DATA, half inside DATA, reconnecting whenever
they are dropped) take every slot of a listener with default settings; 30 normal deliveries
from another address still get 250 within the test's bound. Plus the per-IP limit."""
from __future__ import annotations

import selectors
import smtplib
import socket
import threading
import time

from tests.conftest import free_port
from tests.mails import make_mail
from tests.test_smtp_listener import TOO_MANY_CONNS, count, running, wait_for  # noqa: F401

ATTACKERS = [f"127.0.0.{i}" for i in range(2, 12)]     # 10 addresses x 10 connections
PER_ADDRESS = 10
NORMAL = 30
BOUND = 30.0                                           # seconds for the whole test


class Slowloris:
    """Keeps ``len(ATTACKERS) * PER_ADDRESS`` connections open, each sending one byte every
    ``every`` seconds; a dropped connection is opened again at once."""

    def __init__(self, port, every=5.0):
        self.port, self.every = port, every
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.opened = self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, source: str, in_data: bool) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                         source_address=(source, 0))
            f = s.makefile("rwb")
            f.readline()
            if in_data:   # a quick, valid start; then the body trickles in
                for command in (b"EHLO slow.test", b"MAIL FROM:<x@slow.test>",
                                b"RCPT TO:<support@example.com>", b"DATA"):
                    f.write(command + b"\r\n")
                    f.flush()
                    while (line := f.readline())[3:4] == b"-":
                        pass
                    if not line[:1] in (b"2", b"3"):
                        raise OSError(line)
        except OSError:
            self.dropped += 1
            return
        s.setblocking(False)
        self.opened += 1
        self.sel.register(s, selectors.EVENT_READ, (source, in_data))

    def start(self):
        for k, source in enumerate(ATTACKERS):
            for i in range(PER_ADDRESS):
                self._open(source, in_data=i % 2 == 1)
        self.thread.start()
        return self

    def _run(self):
        next_byte = time.monotonic() + self.every
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:   # dropped by the server: come back at once
                    self.dropped += 1
                    self.sel.unregister(key.fileobj)
                    key.fileobj.close()
                    self._open(*key.data)
            if time.monotonic() >= next_byte:
                next_byte += self.every
                for key in list(self.sel.get_map().values()):
                    try:
                        key.fileobj.send(b"X")
                    except OSError:
                        pass

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def deliver(port, k, deadline) -> tuple[bool, int]:
    """One normal delivery, retried after 421 as an MTA would (compressed): (delivered, 421s)."""
    refused = 0
    while time.monotonic() < deadline:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                c.sendmail("alice@customer.test", ["support@example.com"],
                           make_mail(subject=f"normal {k}", msgid=f"normal{k}@customer.test"))
                return True, refused
        except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected,
                ConnectionError) as exc:
            refused += getattr(exc, "smtp_code", 0) == TOO_MANY_CONNS
            time.sleep(0.5)
    return False, refused


def test_slowloris_does_not_lock_out_a_normal_mta(running):
    started = time.monotonic()
    app, r = running("{name: mx, port: %d}" % free_port(), worker=False)
    port, listener = r.port(), r.daemon.listeners[0]
    attack = Slowloris(port).start()
    try:
        wait_for(lambda: listener.active == 100, timeout=10)   # every slot is taken
        deadline = started + BOUND - 5
        results = [None] * NORMAL

        def normal(k):
            results[k] = deliver(port, k, deadline)

        threads = [threading.Thread(target=normal, args=(k,)) for k in range(NORMAL)]
        for k, t in enumerate(threads):
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join(BOUND)
        delivered = sum(ok for ok, _ in results)
        status = listener.status()
    finally:
        attack.close()
    print(f"\nslowloris: {delivered}/{NORMAL} normal deliveries, {sum(n for _, n in results)} "
          f"421s on the way, {time.monotonic() - started:.1f} s; listener: {status}")
    assert delivered == NORMAL, (results, status)
    assert count(app) == NORMAL
    assert status["dropped_idle"] + status["dropped_slow"] >= NORMAL   # slots were taken back
    assert time.monotonic() - started < BOUND


def test_per_ip_connection_limit(running):
    app, r = running("{name: mx, port: %d, max_connections_per_ip: 3}" % free_port())
    port = r.port()
    held = [smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
            for _ in range(3)]
    try:
        for c in held:                      # busy clients (a command just now): not stalled
            assert c.noop()[0] == 250
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
            raise AssertionError("a 4th connection from 127.0.0.2 was accepted")
        except smtplib.SMTPConnectError as exc:
            assert exc.smtp_code == TOO_MANY_CONNS
        # another address is not affected
        with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.3", 0)) as c:
            assert c.sendmail("bob@customer.test", ["support@example.com"], make_mail()) == {}
        # a stalled client of that address gives its slot to a new one
        time.sleep(2.5)
        assert held[0].noop()[0] == 250 and held[1].noop()[0] == 250
        with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0)) as c:
            assert c.noop()[0] == 250
        try:
            code = held[2].noop()[0]        # it reads the 421 we sent before hanging up
        except smtplib.SMTPServerDisconnected:
            code = None
        assert code in (TOO_MANY_CONNS, None), "the stalled client was not dropped"
    finally:
        for c in held:
            c.close()
