"""SMTP and LMTP listeners (aiosmtpd): bytes in, an accepted inbound row out, then 250.

Replies (one table, see REPLIES): a recipient that is neither a system address nor in a
configured catch-all domain gets 550 5.1.1 (no open relay); a mail over ``max_message_size``
gets 552 (announced in EHLO SIZE); any failure to commit gets 451 4.3.0 -- never 250 before the commit,
never a 5xx for our own trouble. LMTP answers once per accepted recipient after DATA.
``<postmaster>`` is always accepted (RFC 5321 4.5.1). DATA lines longer than 1,000 bytes are
accepted up to the size limit and stored byte-exact. Slow clients cannot hold the slots: see
Gate (per-IP limit, stalled clients give their slot to new ones, minimum data rate).
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
from gateway.ingest.batch import GroupCommitter, short_error
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
    "too_big": "552 5.3.4 Error: message file too big",
    "idle": "421 4.4.2 Error: timeout exceeded, slot needed by another client",
    "too_slow": "421 4.4.2 Error: data rate too low",
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

    def recipient_ok(self, address: str, hostname: str = "") -> bool:
        address = address.strip().strip("<>")
        config = self.config_of()
        if config.system_address(address) is not None:
            return True
        local, _, domain = address.rpartition("@") if "@" in address else (address, "", "")
        domain = domain.lower()
        if domain and domain in self.listener.catch_all_domains:
            return True
        # RFC 5321 4.5.1: <postmaster> (no domain) and postmaster@ each domain we receive for
        # must be accepted; such a mail is handled like one to a catch-all address
        if local.lower() == "postmaster":
            return not domain or domain == hostname.lower() or domain in {
                sa.address.rpartition("@")[2].lower() for sa in config.system_addresses}
        return False

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
        if not self.recipient_ok(address, getattr(server, "hostname", "")):
            self.stats.rejected += 1
            log.info("listener %s: refused recipient <%s> from %s", self.listener.name,
                     address, session.peer[0] if session.peer else "?")
            return REPLIES["unknown_rcpt"].format(rcpt=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLIES["rcpt_ok"]

    async def handle_DATA(self, server, session, envelope):
        if hasattr(server, "tg_data_done"):
            server.tg_data_done()
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
            self.stats.last_error, self.stats.last_error_at = short_error(exc), time.time()
            log.error("listener %s: 451 for mail from <%s>: %s", self.listener.name,
                      envelope.mail_from, short_error(exc))
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


# Commands that cost us nothing and prove nothing: a client may not keep its slot by repeating
# them (aiosmtpd answers 421 and hangs up above the budget); other commands are not limited.
CALL_LIMITS = {"NOOP": 20, "RSET": 100, "HELP": 10, "VRFY": 10, "EXPN": 10, "*": 10**9}
SWEEP_EVERY = 1.0        # seconds between checks of idle and slow connections
DATA_GRACE = 10.0        # seconds of DATA before the minimum data rate applies
STRESS_SHARE = 0.75      # a listener this full (of max_connections) is under stress
EVICT_IDLE = 2.0         # a stalled client this long gives its slot to a new one when full


class Gate:
    """The connection slots of one listener (Postfix-like defences against slow clients).

    At most ``max_connections`` in all and ``max_connections_per_ip`` from one address. When
    either is reached, a new client takes the slot of the client that has been stalled longest
    (no complete command for EVICT_IDLE s, or in DATA below ``min_data_rate``); only when no
    client is stalled does it get 421. Under stress (3/4 of the slots taken) a client that has
    sent no complete command for ``stress_timeout`` s is dropped; in DATA a client must keep up
    ``min_data_rate`` bytes/s (after DATA_GRACE s). A client waiting while we store its mail is
    never dropped."""

    def __init__(self, conf: ListenerConf):
        self.max = conf.max_connections
        self.per_ip = min(conf.max_connections_per_ip, conf.max_connections)
        self.stress_timeout = min(conf.stress_timeout, conf.timeout)
        self.min_data_rate = conf.min_data_rate
        self.conns: set = set()
        self.by_ip: dict[str, int] = {}
        self.dropped_idle = 0
        self.dropped_slow = 0
        self.refused = 0

    @property
    def active(self) -> int:
        return len(self.conns)

    def stressed(self) -> bool:
        return len(self.conns) >= max(1, int(self.max * STRESS_SHARE))

    def admit(self, conn) -> bool:
        """Take a slot for ``conn`` (freeing an idle one if need be); False: answer 421."""
        # the address first: a slot freed there is also a slot freed for the listener
        if self.by_ip.get(conn.tg_ip, 0) >= self.per_ip and not self._evict(
                [c for c in self.conns if c.tg_ip == conn.tg_ip]):
            self.refused += 1
            return False
        if len(self.conns) >= self.max and not self._evict(self.conns):
            self.refused += 1
            return False
        self.conns.add(conn)
        self.by_ip[conn.tg_ip] = self.by_ip.get(conn.tg_ip, 0) + 1
        return True

    def release(self, conn) -> None:
        if conn in self.conns:
            self.conns.discard(conn)
            left = self.by_ip.get(conn.tg_ip, 1) - 1
            if left > 0:
                self.by_ip[conn.tg_ip] = left
            else:
                self.by_ip.pop(conn.tg_ip, None)

    def _stalled_since(self, conn, now: float) -> float | None:
        """When ``conn`` last made progress, if it is stalled: before DATA, no complete command
        for EVICT_IDLE s; in DATA, below ``min_data_rate`` after EVICT_IDLE s. Else None."""
        if conn.tg_phase == "command":
            return conn.tg_progress if now - conn.tg_progress >= EVICT_IDLE else None
        if conn.tg_phase == "data":
            elapsed = now - conn.tg_data_start
            if elapsed >= EVICT_IDLE and (conn.tg_bytes - conn.tg_data_bytes0
                                          < self.min_data_rate * elapsed):
                return conn.tg_data_start
        return None                      # busy: we are storing its mail

    def _evict(self, candidates) -> bool:
        """Free the slot of the client stalled the longest, for a new client."""
        now = time.monotonic()
        stalled = [(since, id(c), c) for c in candidates
                   if (since := self._stalled_since(c, now)) is not None]
        if not stalled:
            return False
        victim = min(stalled)[2]
        if victim.tg_phase == "data":
            self.dropped_slow += 1
            victim.tg_drop(REPLIES["too_slow"])
        else:
            self.dropped_idle += 1
            victim.tg_drop(REPLIES["idle"])
        return True

    def sweep(self) -> None:
        """Drop clients idle too long under stress and clients too slow in DATA."""
        now, stressed = time.monotonic(), self.stressed()
        for conn in list(self.conns):
            if conn.tg_phase == "data":
                elapsed = now - conn.tg_data_start
                if elapsed > DATA_GRACE and (conn.tg_bytes - conn.tg_data_bytes0
                                             < self.min_data_rate * elapsed):
                    self.dropped_slow += 1
                    conn.tg_drop(REPLIES["too_slow"])
            elif (stressed and conn.tg_phase == "command"
                  and now - conn.tg_progress >= self.stress_timeout):
                self.dropped_idle += 1
                conn.tg_drop(REPLIES["idle"])


def _guarded(base):
    class Guarded(base):
        """aiosmtpd protocol plus the listener's Gate, long DATA lines and progress tracking."""

        def __init__(self, handler, *, gate: Gate, **kw):
            super().__init__(handler, command_call_limit=CALL_LIMITS, **kw)
            self._gate = gate
            self._counted = False
            # The stream reader keeps aiosmtpd's 1001-byte limit for command lines; during DATA
            # it is raised so that a line may be as long as the whole mail (RFC 5321's 1000 is
            # a limit for senders; Postfix accepts longer lines too). Stored byte-exact.
            self._data_line_limit = (self.data_size_limit or 2**31) + 2
            self.line_length_limit = self._data_line_limit
            self.tg_ip = "?"
            self.tg_phase = "command"        # command | data | busy (we are storing the mail)
            self.tg_progress = time.monotonic()
            self.tg_bytes = 0
            self.tg_data_bytes0 = 0
            self.tg_data_start = 0.0

        def connection_made(self, transport):
            if not self._counted and not self._tls_protocol:
                peer = transport.get_extra_info("peername")
                self.tg_ip = str(peer[0]) if peer else "?"
                if not self._gate.admit(self):
                    log.info("listener: 421 to %s (%d connections, %d from this address)",
                             self.tg_ip, self._gate.active, self._gate.by_ip.get(self.tg_ip, 0))
                    transport.write((REPLIES["too_many_conns"] + "\r\n").encode())
                    transport.close()
                    self._refused = True
                    return
                self._counted = True
                self.event_handler.stats.connections += 1
            super().connection_made(transport)

        def connection_lost(self, exc):
            if getattr(self, "_refused", False):
                return
            if self._counted:
                self._gate.release(self)
                self._counted = False
            super().connection_lost(exc)

        def data_received(self, data):
            self.tg_bytes += len(data)
            if self.tg_phase == "data":
                self._reset_timeout()        # in DATA, ``timeout`` is an idle limit
            super().data_received(data)

        def _reset_timeout(self, duration=None):
            # called by aiosmtpd on connect and after every complete, valid command
            if self.tg_phase == "command":
                self.tg_progress = time.monotonic()
            super()._reset_timeout(duration)

        def tg_drop(self, reply: str) -> None:
            """Hang up on this client (a Gate decision): its slot is free right away."""
            log.info("listener: %s to %s", reply.split(" ", 2)[-1], self.tg_ip)
            self._gate.release(self)
            self._counted = False
            if self.transport is not None:
                self.transport.write((reply + "\r\n").encode())
                self.transport.close()

        async def smtp_DATA(self, arg):
            self.tg_phase, self.tg_data_start = "data", time.monotonic()
            self.tg_data_bytes0 = self.tg_bytes
            self._reader._limit = self._data_line_limit
            try:
                await super().smtp_DATA(arg)
            finally:
                self._reader._limit = base.line_length_limit
                self.tg_phase = "command"
                self.tg_progress = time.monotonic()

        def tg_data_done(self) -> None:
            """The whole mail is in; from now on the client waits for us."""
            self.tg_phase = "busy"

        async def push(self, status):
            if self.tg_phase == "data" and isinstance(status, str) and status.startswith(
                    "500 Line too long"):
                status = REPLIES["too_big"]  # only a line longer than the size limit gets here
            await super().push(status)

    return Guarded


GuardedSMTP, GuardedLMTP = _guarded(SMTP), _guarded(LMTP)


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
        self._gate = Gate(conf)
        self._sweeper: asyncio.Task | None = None
        self._tls = tls_context(conf)
        self._users = load_users(conf.auth_users_file)

    def _factory(self):
        cls = GuardedLMTP if self.conf.protocol == "lmtp" else GuardedSMTP
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
        return self._gate.active

    def wake(self) -> None:
        """Nothing to fetch: clients deliver to us."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, host=self.conf.host,
                                               port=self.conf.port, reuse_address=True)
        self._sweeper = loop.create_task(self._sweep(), name=f"sweep-{self.conf.name}")
        log.info("listener %s: %s on %s:%s%s", self.conf.name, self.conf.protocol.upper(),
                 self.conf.host, self.port, " (STARTTLS)" if self._tls else "")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                self._gate.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must survive any one connection
                log.exception("listener %s: sweep failed", self.conf.name)

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
        if self._sweeper is not None:
            self._sweeper.cancel()
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
                "tempfailed": s.tempfailed, "refused_connections": self._gate.refused,
                "dropped_idle": self._gate.dropped_idle,
                "dropped_slow": self._gate.dropped_slow, "last_error": s.last_error,
                "last_error_at": s.last_error_at}


def build_listeners(config, context: SourceContext) -> list[Listener]:
    return [Listener(conf, context.committer, context.config_of, hostname=config.fqdn)
            for conf in config.listeners]
