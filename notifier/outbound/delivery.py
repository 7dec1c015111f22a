"""Delivering the outbound queue: ``deliver_due()`` claims due rows with a lease, sends them
through the smarthost with aiosmtplib and records each result as soon as the server answers.

Leases: a claim gives its rows a fresh random ``lease_token`` and ``claimed_until`` = the
database's clock + ``lease`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on
SQLite), so daemons whose clocks disagree still agree on who owns a row. While a batch is being
sent its lease is renewed; a result is recorded only on a row that still carries our token.

Results: each mail's result is committed in its own short transaction right after the server's
answer: 2xx sent; 4xx and connection trouble retried with growing backoff until
``give_up_after`` (RFC 5321 4.5.4.1, default 4 days); 5xx failed at once; a failure is written
to the ticket history. Whatever goes wrong with one mail (an address we cannot put in an
envelope, an exception in the SMTP client) is that mail's retry or failure, never the batch's.
A crash between a server's 250 and that one commit sends that one mail again once its lease
ends: after N crashes at most N mails went out twice, none is lost or stuck.

Envelopes: domains are sent as IDNA 2008 / UTS-46 A-labels (``kunde2@xn--strae-oqa.de``); a
non-ASCII local part (or a mail marked ``smtputf8``) is sent with SMTPUTF8 when the smarthost
offers it and fails permanently, that mail alone, when it does not."""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import aiosmtplib
import idna
from sqlalchemy import bindparam, or_, select, text

from gateway.failpoints import failpoint
from gateway.store.models import OutboundMail, Ticket
from gateway.tickets import add_history

log = logging.getLogger("ticketgate.outbox")
_OUTBOUND = OutboundMail.__table__
# built once: constructing the statement per mail cost more than the commit
_MARK_SENT = _OUTBOUND.update().where(
    _OUTBOUND.c.id == bindparam("oid"), _OUTBOUND.c.lease_token == bindparam("token")).values(
    status="sent", sent_at=bindparam("sent_at", type_=_OUTBOUND.c.sent_at.type),
    last_error=None, attempts=_OUTBOUND.c.attempts + 1, claimed_until=None, lease_token=None)
BACKOFF_SECONDS = (60, 120, 300, 600, 1200, 1800, 3600)


@dataclass
class Result:
    outbound_id: int
    status: str          # sent | retry | failed
    detail: str = ""


class EnvelopeError(ValueError):
    """An address that cannot be put into this SMTP envelope (a permanent failure)."""


def _password(settings) -> str | None:
    if settings.get("password_env"):
        return os.environ.get(settings["password_env"])
    if settings.get("password_file"):
        return open(settings["password_file"], encoding="utf-8").read().strip()
    return None


# -- the database's clock ------------------------------------------------------------------------
def db_now(session) -> datetime:
    """The database server's current time (UTC): the one clock every daemon's leases use."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(text("SELECT clock_timestamp()")).scalar()
    else:
        value = datetime.fromisoformat(session.execute(
            text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class _Clock:
    """The database's clock during one batch: read from the database at the start and at each
    lease renewal, advanced in between by this process's monotonic clock (no query per mail).
    A fixed ``now`` (tests) stays fixed."""

    def __init__(self, store, now: datetime | None):
        self.fixed = now
        if now is None:
            with store.read_session() as session:
                self.sync(db_now(session))

    def sync(self, db_time: datetime) -> None:
        self.base, self.mono = db_time, time.monotonic()

    def now(self) -> datetime:
        if self.fixed is not None:
            return self.fixed
        return self.base + timedelta(seconds=time.monotonic() - self.mono)


# -- envelopes ----------------------------------------------------------------------------------
def envelope_address(address: str) -> tuple[str, bool]:
    """``address`` as it goes into MAIL FROM / RCPT TO, and whether it needs SMTPUTF8: the
    domain as its IDNA 2008 (UTS-46) A-label, the local part as it is."""
    if address == "":
        return "", False                       # the null reverse-path <>
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise EnvelopeError(f"{address!r} is not a mailbox (local@domain)")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise EnvelopeError(f"{address!r}: domain is not a valid IDNA 2008 name "
                                f"({exc})") from None
    if any(c in local for c in "\r\n\0"):
        raise EnvelopeError(f"{address!r}: control character in the local part")
    return f"{local}@{domain}", not local.isascii()


def envelope(row: OutboundMail, smtputf8_offered: bool) -> tuple[str, list[str], list[str]]:
    """(sender, recipients, MAIL options) for one row; EnvelopeError if it cannot be sent
    through this smarthost."""
    sender, needs = envelope_address(row.mail_from)
    recipients = []
    for address in row.rcpt_to:
        wire, utf8 = envelope_address(address)
        recipients.append(wire)
        needs = needs or utf8
    if not recipients:
        raise EnvelopeError("no recipients")
    needs = needs or bool(row.smtputf8)
    if needs and not smtputf8_offered:
        raise EnvelopeError("needs SMTPUTF8 (a non-ASCII address or UTF-8 header), which the "
                            "smarthost does not offer")
    return sender, recipients, (["SMTPUTF8"] if needs else [])


# -- claim, record, renew -----------------------------------------------------------------------
def claim(store, settings, now: datetime | None, limit: int) -> list[OutboundMail]:
    """Take up to ``limit`` due rows for this worker: a lease under one fresh token (every row
    returned carries it in ``lease_token``), committed before sending. ``now`` (tests) stands
    in for the database's clock."""
    token = uuid.uuid4().hex
    with store.session() as session:
        clock = now or db_now(session)
        query = select(OutboundMail).where(
            OutboundMail.status == "pending", OutboundMail.next_attempt <= clock,
            or_(OutboundMail.claimed_until.is_(None), OutboundMail.claimed_until < clock)) \
            .order_by(OutboundMail.next_attempt, OutboundMail.id).limit(limit)
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).scalars().all()
        lease_end = clock + timedelta(seconds=settings["lease"])
        for row in rows:
            row.claimed_until, row.lease_token = lease_end, token
        return rows


def record_sent(store, token: str, outbound_id: int, clock: datetime) -> bool:
    """The common case, as cheap as it can be: one UPDATE in its own transaction, on the row
    only while it still carries ``token``."""
    with store.engine.begin() as conn:
        done = conn.execute(_MARK_SENT, {"oid": outbound_id, "token": token,
                                         "sent_at": clock}).rowcount
    if not done:
        log.warning("outbound %s: lease lost before it was recorded as sent; another worker "
                    "may send it again", outbound_id)
    return bool(done)


def _record_one(session, store, settings, token: str, result: Result, clock: datetime) -> bool:
    if result.status == "sent":
        return bool(session.connection().execute(_MARK_SENT, {
            "oid": result.outbound_id, "token": token, "sent_at": clock}).rowcount)
    query = select(OutboundMail).where(OutboundMail.id == result.outbound_id,
                                       OutboundMail.lease_token == token)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        log.warning("outbound %s: lease lost before its result (%s) was recorded; "
                    "not recorded", result.outbound_id, result.status)
        return False
    row.claimed_until = row.lease_token = None
    row.attempts += 1
    row.last_error = result.detail[:2000]
    if result.status == "retry" and clock - row.created < settings["give_up_after_td"]:
        delay = BACKOFF_SECONDS[min(row.attempts - 1, len(BACKOFF_SECONDS) - 1)]
        row.next_attempt = clock + timedelta(seconds=delay)
        return True
    why = "gave up after " + settings["give_up_after"] if result.status == "retry" \
        else "permanent failure"
    row.status = result.status = "failed"
    log.warning("outbound %s to %s failed (%s): %s", row.id, row.rcpt_to, why, result.detail)
    if row.ticket_id is not None:
        add_history(session, session.get(Ticket, row.ticket_id), "SendFailed",
                    f"{row.kind} to {', '.join(row.rcpt_to)} not delivered ({why}): "
                    f"{result.detail[:300]}", outbound_id=row.id)
    return True


def record(store, settings, token: str, results: list[Result],
           now: datetime | None = None) -> None:
    """Commit ``results`` in one short transaction, each only on a row still leased under
    ``token``."""
    with store.session() as session:
        clock = now or db_now(session)
        for result in results:
            _record_one(session, store, settings, token, result, clock)


def renew(store, settings, token: str, now: datetime | None = None,
          clock: _Clock | None = None) -> int:
    """Extend the lease of the rows still claimed under ``token`` by ``lease`` seconds from
    the database's clock (which ``clock`` is synchronised with); how many rows that was."""
    with store.session() as session:
        db_time = now or db_now(session)
        if clock is not None and now is None:
            clock.sync(db_time)
        return session.execute(_OUTBOUND.update().where(
            _OUTBOUND.c.lease_token == token, _OUTBOUND.c.status == "pending")
            .values(claimed_until=db_time + timedelta(seconds=settings["lease"]))).rowcount


async def _keep_leased(store, settings, token: str, now: datetime | None,
                       clock: _Clock) -> None:
    """While a batch is being sent: renew its lease every third of the lease, in a thread
    (a slow DATA or a waiting write lock does not let the lease run out meanwhile)."""
    while True:
        await asyncio.sleep(settings["lease"] / 3)
        try:
            await asyncio.to_thread(renew, store, settings, token, now, clock)
        except Exception:  # noqa: BLE001 - try again next time; the lease is still running
            log.exception("outbound: renewing the lease of a batch failed")


# -- sending --------------------------------------------------------------------------------------
async def _send_one(client, row: OutboundMail) -> tuple[Result, bool]:
    """Send one row; (its result, whether the connection can carry the next mail)."""
    try:
        sender, recipients, options = envelope(row, client.supports_extension("smtputf8"))
    except EnvelopeError as exc:
        return Result(row.id, "failed", str(exc)), True
    try:
        errors, response = await client.sendmail(sender, recipients, row.raw,
                                                 mail_options=options)
    except aiosmtplib.SMTPRecipientsRefused as exc:     # the client has sent RSET
        codes = [r.code for r in exc.recipients]
        status = "failed" if codes and all(500 <= c < 600 for c in codes) else "retry"
        return Result(row.id, status, "; ".join(
            f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)), True
    except aiosmtplib.SMTPResponseException as exc:     # MAIL or DATA refused; RSET sent
        status = "failed" if 500 <= exc.code < 600 else "retry"
        return Result(row.id, status, f"{exc.code} {exc.message}"), client.is_connected
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        return Result(row.id, "retry", f"{type(exc).__name__}: {exc}"), False
    except Exception as exc:  # noqa: BLE001 - one mail's trouble stays that mail's
        log.exception("outbound %s: unexpected error while sending", row.id)
        usable = True
        try:
            await client.rset()
        except Exception:  # noqa: BLE001 - the envelope may be half open; start afresh
            usable = False
        return Result(row.id, "retry", f"{type(exc).__name__}: {exc}"), usable
    if errors:
        codes = [code for code, _ in errors.values()]
        bad = "; ".join(f"{a}: {c} {m}" for a, (c, m) in errors.items())
        return Result(row.id, "failed" if all(500 <= c < 600 for c in codes) else "retry",
                      bad), True
    return Result(row.id, "sent", response), True


async def _send_all(store, settings, rows: list[OutboundMail], token: str,
                    now: datetime | None) -> list[Result]:
    """Send ``rows`` over one connection, committing each result as soon as it is known."""
    client = aiosmtplib.SMTP(hostname=settings["host"], port=settings["port"],
                             timeout=settings["timeout"], use_tls=settings["tls"] == "tls",
                             start_tls=True if settings["tls"] == "starttls" else False)
    try:
        await client.connect()
        if settings.get("username"):
            await client.login(settings["username"], _password(settings) or "")
        if client.is_ehlo_or_helo_needed:       # the extensions (SMTPUTF8) are known after it
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
    except Exception as exc:  # noqa: BLE001 - nothing was sent: every row is retried
        code = getattr(exc, "code", None)
        status = "failed" if code and 500 <= code < 600 else "retry"
        results = [Result(r.id, status, f"smarthost: {exc}") for r in rows]
        record(store, settings, token, results, now)
        client.close()
        return results
    results: list[Result] = []
    clock = _Clock(store, now)
    keeper = asyncio.create_task(_keep_leased(store, settings, token, now, clock))
    try:
        for row in rows:
            result, usable = await _send_one(client, row)
            if result.status == "sent":
                failpoint("OUTBOX_AFTER_250")   # crash tests: the server has it, not recorded
                record_sent(store, token, row.id, clock.now())
            else:
                record(store, settings, token, [result], now)
            results.append(result)
            if not usable:
                break
    finally:
        keeper.cancel()
        try:
            await client.quit()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            client.close()
    done = {r.outbound_id for r in results}
    rest = [Result(r.id, "retry", "not attempted: connection lost") for r in rows
            if r.id not in done]
    if rest:
        record(store, settings, token, rest, now)
    return results + rest


def deliver_due(store, config, now: datetime | None = None) -> list[Result]:
    """One delivery run: claim, send, record. Safe to call from several workers and
    daemons. ``now`` (tests) stands in for the database's clock."""
    settings = config.outbound
    rows = claim(store, settings, now, settings["batch"])
    if not rows:
        return []
    return asyncio.run(_send_all(store, settings, rows, rows[0].lease_token, now))


def drain(store, config, now: datetime | None = None, rounds: int = 100) -> list[Result]:
    """Deliver until nothing is due (tests, ``ticketgate outbox send``)."""
    out = []
    for _ in range(rounds):
        results = deliver_due(store, config, now)
        if not results:
            break
        out += results
        if all(r.status == "retry" for r in results):
            break   # the smarthost is in trouble: the backoff decides when to try again
    return out


def job(app) -> None:
    """Daemon job: deliver what is due."""
    deliver_due(app.store, app.config)
