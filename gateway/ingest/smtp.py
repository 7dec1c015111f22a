"""SMTP and LMTP listeners (aiosmtpd): bytes in, an accepted inbound row out, then 250.

Replies (one table, see REPLIES): a recipient that is neither a system address nor in a
configured catch-all domain gets 550 5.1.1 (no open relay); a mail over ``max_message_size``
gets 552 (announced in EHLO SIZE); any failure to commit gets 451 4.3.0 -- never 250 before the commit,
never a 5xx for our own trouble. LMTP answers once per accepted recipient after DATA.
Database work runs off the event loop through the group committer (batch.py).

Config keys (ticketgate.yaml ``listeners``): see gateway/ingest/config.py LISTENER_KEYS.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import ssl
import time
from email.utils import formatdate
from typing import Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from gateway.ingest.config import ListenerConf
from gateway.intake import Envelope
from gateway.ingest.batch import GroupCommitter
from gateway.ingest.source import SourceContext

log = logging.getLogger("ticketgate.smtp")

REPLIES = {
    "ok": "250 2.0.0 Ok: queued as {id}",
    "rcpt_ok": "250 2.1.5 Ok",
    "unknown_rcpt": "550 5.1.1 <{rcpt}>: Recipient address rejected: not a system address",
    "too_many_rcpts": "452 4.5.3 Error: too many recipients",
    "too_many_mails": "421 4.7.0 Error: too many mails in this connection, reconnect",
    "too_many_conns": "421 4.7.0 Error: too many connections, try again later",
    "tempfail": "451 4.3.0 Error: local trouble storing the mail, try again later",
    "shutdown": "421 4.3.2 Service shutting down, try again later",
}


def load_users(path: str | None) -> dict[str, str]:
    """``user:password`` lines (# comments allowed)."""
    users = {}
    if not path:
        return users
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                user, password = line.split(":", 1)
                users[user.strip()] = password
    return users


class Authenticator:
    def __init__(self, users: dict[str, str]):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        expected = self.users.get(user)
        ok = expected is not None and hmac.compare_digest(
            expected.encode(), auth_data.password)
        if not ok:
            log.warning("listener: AUTH failed for %r from %s", user, session.peer)
            # handled=False: aiosmtpd answers 535 (handled=True would leave the client hanging)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=user)


class Stats:
    def __init__(self):
        self.connections = 0
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.tempfailed = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None


class IngestHandler:
    """aiosmtpd handler: recipients checked against the *current* config, DATA committed."""

    def __init__(self, listener: ListenerConf, committer: GroupCommitter,
                 config_of: Callable, stats: Stats | None = None):
        self.listener = listener
        self.committer = committer
        self.config_of = config_of
        self.stats = stats or Stats()
        self.closing = False

    def recipient_ok(self, address: str) -> bool:
        address = address.strip().strip("<>")
        if self.config_of().system_address(address) is not None:
            return True
        domain = address.rpartition("@")[2].lower()
        return bool(domain) and domain in self.listener.catch_all_domains

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.closing:
            return REPLIES["shutdown"]
        count = getattr(session, "tg_mails", 0)
        if count >= self.listener.max_messages_per_connection:
            return REPLIES["too_many_mails"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.listener.max_recipients:
            return REPLIES["too_many_rcpts"]
        if not self.recipient_ok(address):
            self.stats.rejected += 1
            log.info("listener %s: refused recipient <%s> from %s", self.listener.name,
                     address, session.peer[0] if session.peer else "?")
            return REPLIES["unknown_rcpt"].format(rcpt=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLIES["rcpt_ok"]

    async def handle_DATA(self, server, session, envelope):
        session.tg_mails = getattr(session, "tg_mails", 0) + 1
        n_rcpt = len(envelope.rcpt_tos) if self.listener.protocol == "lmtp" else 1
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        raw = self._received(server, session, envelope) + raw
        env = Envelope(source=self.listener.source, mail_from=envelope.mail_from,
                       rcpt_to=list(envelope.rcpt_tos), trusted=self.listener.trusted,
                       queue=self.listener.queue,
                       trust_authentication_results=self.listener.trust_authentication_results,
                       authenticated_user=session.auth_data if isinstance(
                           session.auth_data, str) else None)
        try:
            accepted = await self.committer.submit(raw, env)
        except Exception as exc:  # noqa: BLE001 - our trouble is never a 5xx nor a silent drop
            self.stats.tempfailed += 1
            self.stats.last_error, self.stats.last_error_at = str(exc)[:300], time.time()
            log.error("listener %s: 451 for mail from <%s>: %s", self.listener.name,
                      envelope.mail_from, exc)
            return "\r\n".join([REPLIES["tempfail"]] * n_rcpt)
        self.stats.accepted += 1
        self.stats.duplicates += accepted.duplicate
        log.info("listener %s: accepted inbound=%s%s from=<%s> to=%s size=%d",
                 self.listener.name, accepted.inbound_id,
                 " (duplicate)" if accepted.duplicate else "", envelope.mail_from,
                 ",".join(envelope.rcpt_tos), len(raw))
        return "\r\n".join([REPLIES["ok"].format(id=accepted.inbound_id)] * n_rcpt)

    async def handle_exception(self, error):
        self.stats.last_error, self.stats.last_error_at = repr(error)[:300], time.time()
        log.error("listener %s: session error: %r", self.listener.name, error)
        return REPLIES["tempfail"]

    def _received(self, server, session, envelope) -> bytes:
        peer = session.peer[0] if session.peer else "unknown"
        helo = session.host_name or "unknown"
        proto = "LMTP" if self.listener.protocol == "lmtp" else "ESMTP"
        if session.ssl:
            proto += "S"
        if session.authenticated:
            proto += "A"
        rcpt = envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None
        line = (f"Received: from {helo} ([{peer}])\r\n\tby {server.hostname} (ticketgate) "
                f"with {proto}{f' for <{rcpt}>' if rcpt else ''};\r\n\t"
                f"{formatdate(localtime=False)}\r\n")
        return line.encode("ascii", "replace")


def _limited(base):
    class Limited(base):
        """Adds a per-listener connection limit (421 above it)."""

        def __init__(self, handler, *, gate, **kw):
            super().__init__(handler, **kw)
            self._gate = gate
            self._counted = False

        def connection_made(self, transport):
            if not self._counted and not self._tls_protocol:
                if self._gate["active"] >= self._gate["max"]:
                    transport.write((REPLIES["too_many_conns"] + "\r\n").encode())
                    transport.close()
                    self._refused = True
                    return
                self._gate["active"] += 1
                self._counted = True
                self.event_handler.stats.connections += 1
            super().connection_made(transport)

        def connection_lost(self, exc):
            if getattr(self, "_refused", False):
                return
            if self._counted:
                self._gate["active"] -= 1
                self._counted = False
            super().connection_lost(exc)

    return Limited


LimitedSMTP, LimitedLMTP = _limited(SMTP), _limited(LMTP)


def tls_context(listener: ListenerConf) -> ssl.SSLContext | None:
    if not listener.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(listener.tls_cert, listener.tls_key)
    return ctx


class Listener:
    """One listening socket on the daemon's event loop (an IngestSource, gateway/ingest/source.py)."""

    poll_every = None   # mail is pushed to us

    def __init__(self, conf: ListenerConf, committer: GroupCommitter, config_of: Callable,
                 hostname: str | None = None):
        self.conf = conf
        self.stats = Stats()
        self.handler = IngestHandler(conf, committer, config_of, self.stats)
        self.hostname = hostname or socket.getfqdn()
        self.server: asyncio.base_events.Server | None = None
        self._gate = {"active": 0, "max": conf.max_connections}
        self._tls = tls_context(conf)
        self._users = load_users(conf.auth_users_file)

    def _factory(self):
        cls = LimitedLMTP if self.conf.protocol == "lmtp" else LimitedSMTP
        kw = dict(gate=self._gate, data_size_limit=self.conf.max_message_size,
                  hostname=self.hostname, ident="ticketgate", timeout=self.conf.timeout,
                  enable_SMTPUTF8=True, decode_data=False, tls_context=self._tls,
                  require_starttls=self.conf.require_tls)
        if self._users:
            kw.update(authenticator=Authenticator(self._users),
                      auth_required=self.conf.auth_required, auth_require_tls=True)
        return cls(self.handler, **kw)

    @property
    def name(self) -> str:
        return f"{self.conf.protocol}:{self.conf.name}"

    @property
    def active(self) -> int:
        return self._gate["active"]

    def wake(self) -> None:
        """Nothing to fetch: clients deliver to us."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, host=self.conf.host,
                                               port=self.conf.port, reuse_address=True)
        log.info("listener %s: %s on %s:%s%s", self.conf.name, self.conf.protocol.upper(),
                 self.conf.host, self.port, " (STARTTLS)" if self._tls else "")

    @property
    def port(self) -> int:
        if self.server and self.server.sockets:
            return self.server.sockets[0].getsockname()[1]
        return self.conf.port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening; let connections that are mid-DATA finish (up to ``grace`` s)."""
        if self.server is None:
            return
        self.handler.closing = True
        self.server.close()
        end = time.monotonic() + grace
        while self.active and time.monotonic() < end:
            await asyncio.sleep(0.05)
            if not self.handler.committer._queue:
                break  # nothing mid-commit; idle connections are just dropped
        self.server = None

    def status(self) -> dict:
        s = self.stats
        return {"name": self.conf.name, "protocol": self.conf.protocol,
                "host": self.conf.host, "port": self.port, "tls": bool(self._tls),
                "auth": bool(self._users), "active_connections": self.active,
                "connections": s.connections, "accepted": s.accepted,
                "duplicates": s.duplicates, "rejected_recipients": s.rejected,
                "tempfailed": s.tempfailed, "last_error": s.last_error,
                "last_error_at": s.last_error_at}


def build_listeners(config, context: SourceContext) -> list[Listener]:
    return [Listener(conf, context.committer, context.config_of, hostname=config.fqdn)
            for conf in config.listeners]
