"""Agent and customer vacation responders answering each other through ticketgate (issue 11
point 10): how many mails the help desk sends in ROUNDS delivery rounds, with header-stripping
responders, through a real aiosmtpd sink.

    .venv/bin/python bench/vacation_loop.py [ROUNDS]     # default 30

Scenario "subject": the agent's responder keeps its "Automatic reply:" subject; "naive": both
responders answer "Re: <subject>" with no mark at all. Runs on any checkout (public API only).
"""
from __future__ import annotations

import email
import shutil
import socket
import sys
import tempfile
import time
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import open_app  # noqa: E402
from gateway.intake import Envelope, accept  # noqa: E402
from gateway.processing import process_inbound  # noqa: E402
from notifier.outbound import delivery  # noqa: E402

AUTH = """
agent_auth:
  methods: [token]
  secret_file: agent.secret
  reply_address_format: "helpdesk+t{ticket}-{token}@example.com"
"""


class Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def mail(frm, to, subject, in_reply_to, n):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <v{n}@away.test>\r\n"
            f"In-Reply-To: {in_reply_to}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nI am on vacation until Monday."
            f"\r\n").encode()


def ingest(app, raw):
    process_inbound(app.store, app.pipeline, accept(app.store, raw, Envelope()).inbound_id)


def run(agent_subject: str, rounds: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        conf = Path(tmp) / "conf"
        shutil.copytree(ROOT / "conf", conf)
        (conf / "agent.secret").write_text("s3cret-s3cret-s3cret-0123456789\n")
        path = conf / "ticketgate.yaml"
        path.write_text(path.read_text() + AUTH + f"\noutbound: {{host: 127.0.0.1, port: {port}}}\n")
        app = open_app(conf, database=f"sqlite:///{tmp}/tg.db")
        agents = {e for a in app.config.agents.values() for e in a.emails}
        start = time.monotonic()
        ingest(app, mail("Alice <alice@customer.test>", "support@example.com", "Printer burns",
                         "<none@x>", 0))
        seen, n = 0, 0
        for _ in range(rounds):
            delivery.drain(app.store, app.config)
            new, seen = sink.envelopes[seen:], len(sink.envelopes)
            if not new:
                break
            for env in new:
                n += 1
                msg = email.message_from_bytes(env.content, policy=policy.default)
                rcpt = env.rcpt_tos[0].lower()
                if rcpt in agents:
                    ingest(app, mail(f"Agent <{rcpt}>", str(msg["Reply-To"] or msg["From"]),
                                     agent_subject.format(subject=msg["Subject"]),
                                     msg["Message-ID"], n))
                else:
                    ingest(app, mail("Alice <alice@customer.test>", str(msg["From"]),
                                     f"Re: {msg['Subject']}", msg["Message-ID"], n))
        took = time.monotonic() - start
        app.store.close()
        controller.stop()
        return len(sink.envelopes), took


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    for name, subject in (("subject", "Automatic reply: {subject}"), ("naive", "Re: {subject}")):
        sent, took = run(subject, rounds)
        print(f"{name}: {sent} mails sent in {rounds} rounds or fewer ({took:.1f} s)")
