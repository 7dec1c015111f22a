"""The durable outbound queue and its sender worker.

``queue_mail()`` adds a row in the caller's transaction, so a mail exists exactly when the
event that caused it was committed. ``deliver_due()`` claims due rows with a lease
(``claimed_until``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite),
sends them through the smarthost with aiosmtplib and records the result: 2xx sent; 4xx and
connection trouble retried with growing backoff until ``give_up_after`` (RFC 5321 4.5.4.1,
default 4 days); 5xx failed at once. A failure is written to the ticket history. A crash
between the SMTP answer and the commit can send a row again after its lease ends (at least
once, never silently lost); a claimed row is never sent by two workers at the same time.

Config (ticketgate.yaml ``outbound:``): host, port, tls (none | starttls | tls), username,
password_env / password_file, timeout, give_up_after (e.g. 4d, 12h), lease (seconds),
auto_response_limit (per sender address and 24 h, default 40), noreply_regex.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import Message

import aiosmtplib
from sqlalchemy import or_, select

from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key, port, positive
from gateway.store.models import Article, Ticket, utcnow
from gateway.tickets import add_history
from notifier.message import body_text, wire_bytes
from notifier.models import OutboundMail

log = logging.getLogger("ticketgate.outbox")

OUTBOUND = {
    "host": Key(str, "127.0.0.1", "smarthost"),
    "port": Key(int, 25, "smarthost port", check=port),
    "tls": Key(str, "none", "none | starttls | tls", choices=("none", "starttls", "tls")),
    "username": Key(str, None, "SMTP AUTH user"),
    "password_env": Key(str, None, "environment variable holding the SMTP AUTH password"),
    "password_file": Key(str, None, "file holding the SMTP AUTH password"),
    "timeout": Key(float, 30.0, "seconds per SMTP conversation", check=positive),
    "give_up_after": Key(str, "4d", "stop retrying a mail after this long (RFC 5321: 4-5 days)",
                         check=lambda text: None if _DURATION.match(text) else
                         "is not a duration (use e.g. 90s, 30m, 12h, 4d)"),
    "lease": Key(int, 300, "seconds a worker owns a claimed mail", check=positive),
    "batch": Key(int, 50, "mails per delivery run", check=positive),
    "auto_response_limit": Key(int, 40, "auto-responses per sender address per 24 h"),
    "store_articles": Key(bool, False, "store each auto-response as an outgoing article on "
                                       "the ticket (replies find the ticket either way)"),
}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
BACKOFF_SECONDS = (60, 120, 300, 600, 1200, 1800, 3600)


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r} (use e.g. 90s, 30m, 12h, 4d)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def load_outbound(config, problems: list[Problem]) -> None:
    """``config.outbound``: ticketgate.yaml ``outbound:`` as checked against OUTBOUND."""
    config.outbound = dict(config.settings["outbound"],
                           give_up_after_td=parse_duration(config.settings["outbound"]
                                                           ["give_up_after"]))


SECTION = ConfigSection("outbound", load_outbound, keys=(("ticketgate.yaml", {
    "outbound": Key(dict, dict, "smarthost for outgoing mail", keys=OUTBOUND)}),))


def queue_mail(session, message: Message, *, mail_from: str, rcpt_to: list[str],
               ticket_id: int | None = None, article_id: int | None = None,
               kind: str = "mail") -> OutboundMail:
    """Add an outgoing mail to the queue in the caller's transaction."""
    row = OutboundMail(
        ticket_id=ticket_id, article_id=article_id, kind=kind, mail_from=mail_from,
        rcpt_to=list(rcpt_to), rcpt_key=(rcpt_to[0] if rcpt_to else "").lower()[:320],
        message_id=str(message["Message-ID"]).strip().strip("<>"),
        subject=str(message["Subject"] or ""), raw=wire_bytes(message),
        status="pending", attempts=0, next_attempt=utcnow())
    session.add(row)
    return row


def outgoing_article(session, ticket, message: Message, *, sender_type: str = "system",
                     internal: bool = False, flags: dict | None = None) -> Article:
    """The ticket's record of a mail we send (direction "out"): its Message-ID is what a
    customer's reply names in In-Reply-To/References, so the reply joins this ticket."""
    def ids(value) -> str | None:
        return " ".join(_MSGID.findall(str(value))) or None if value else None

    article = Article(
        ticket=ticket, direction="out", sender_type=sender_type, kind="email",
        internal=internal, from_addr=str(message["From"] or ""), to_addr=str(message["To"] or ""),
        cc_addr=str(message["Cc"] or ""), subject=str(message["Subject"] or ""),
        body=body_text(message) if not message.is_multipart() else "",
        content_type="text/plain", message_id=str(message["Message-ID"]).strip().strip("<>"),
        in_reply_to=(str(message["In-Reply-To"]).strip().strip("<>")
                     if message["In-Reply-To"] else None),
        references=ids(message["References"]), flags=dict(flags or {}), created=utcnow())
    session.add(article)
    return article


_MSGID = re.compile(r"<([^<>\s]+)>")


def ticket_for_message_id(session, message_id: str):
    """Follow-up lookup: the ticket a mail we sent (by its Message-ID) belongs to."""
    row = session.execute(select(OutboundMail.ticket_id).where(
        OutboundMail.message_id == message_id, OutboundMail.ticket_id.is_not(None))
        .order_by(OutboundMail.id.desc()).limit(1)).scalar()
    return session.get(Ticket, row) if row is not None else None


# -- delivery ----------------------------------------------------------------------------------
@dataclass
class Result:
    outbound_id: int
    status: str          # sent | retry | failed
    detail: str = ""


def _password(settings) -> str | None:
    if settings.get("password_env"):
        return os.environ.get(settings["password_env"])
    if settings.get("password_file"):
        return open(settings["password_file"], encoding="utf-8").read().strip()
    return None


def claim(store, settings, now: datetime, limit: int) -> list[OutboundMail]:
    """Take up to ``limit`` due rows for this worker (a lease, committed before sending)."""
    lease_end = now + timedelta(seconds=settings["lease"])
    with store.session() as session:
        query = select(OutboundMail).where(
            OutboundMail.status == "pending", OutboundMail.next_attempt <= now,
            or_(OutboundMail.claimed_until.is_(None), OutboundMail.claimed_until < now)) \
            .order_by(OutboundMail.next_attempt, OutboundMail.id).limit(limit)
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).scalars().all()
        for row in rows:
            row.claimed_until = lease_end
        return rows


async def _send_all(settings, rows: list[OutboundMail]) -> list[Result]:
    results = []
    client = aiosmtplib.SMTP(hostname=settings["host"], port=settings["port"],
                             timeout=settings["timeout"], use_tls=settings["tls"] == "tls",
                             start_tls=True if settings["tls"] == "starttls" else False)
    try:
        await client.connect()
        if settings.get("username"):
            await client.login(settings["username"], _password(settings) or "")
    except (aiosmtplib.SMTPException, OSError) as exc:
        code = getattr(exc, "code", None)
        status = "failed" if code and 500 <= code < 600 else "retry"
        return [Result(r.id, status, f"smarthost: {exc}") for r in rows]
    try:
        for row in rows:
            try:
                errors, response = await client.sendmail(row.mail_from, row.rcpt_to, row.raw)
                if errors:
                    codes = [code for code, _ in errors.values()]
                    bad = "; ".join(f"{a}: {c} {m}" for a, (c, m) in errors.items())
                    status = "failed" if all(500 <= c < 600 for c in codes) else "retry"
                    results.append(Result(row.id, status, bad))
                else:
                    results.append(Result(row.id, "sent", response))
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                status = "failed" if codes and all(500 <= c < 600 for c in codes) else "retry"
                results.append(Result(row.id, status, "; ".join(
                    f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)))
                try:
                    await client.rset()
                except aiosmtplib.SMTPException:
                    break
            except aiosmtplib.SMTPResponseException as exc:
                status = "failed" if 500 <= exc.code < 600 else "retry"
                results.append(Result(row.id, status, f"{exc.code} {exc.message}"))
                if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                    break
            except (aiosmtplib.SMTPException, OSError) as exc:
                results.append(Result(row.id, "retry", str(exc)))
                break
    finally:
        try:
            await client.quit()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            client.close()
    done = {r.outbound_id for r in results}
    results += [Result(r.id, "retry", "not attempted: connection lost") for r in rows
                if r.id not in done]
    return results


def record(store, settings, results: list[Result], now: datetime) -> None:
    give_up = settings["give_up_after_td"]
    with store.session() as session:
        for result in results:
            row = session.get(OutboundMail, result.outbound_id)
            row.claimed_until = None
            row.attempts += 1
            if result.status == "sent":
                row.status, row.sent_at, row.last_error = "sent", now, None
                continue
            row.last_error = result.detail[:2000]
            if result.status == "retry" and now - row.created < give_up:
                delay = BACKOFF_SECONDS[min(row.attempts - 1, len(BACKOFF_SECONDS) - 1)]
                row.next_attempt = now + timedelta(seconds=delay)
                continue
            why = "gave up after " + settings["give_up_after"] if result.status == "retry" \
                else "permanent failure"
            row.status = result.status = "failed"
            log.warning("outbound %s to %s failed (%s): %s", row.id, row.rcpt_to, why,
                        result.detail)
            if row.ticket_id is not None:
                add_history(session, session.get(Ticket, row.ticket_id), "SendFailed",
                            f"{row.kind} to {', '.join(row.rcpt_to)} not delivered ({why}): "
                            f"{result.detail[:300]}", outbound_id=row.id)


def deliver_due(store, config, now: datetime | None = None) -> list[Result]:
    """One delivery run: claim, send, record. Safe to call from several workers."""
    now = now or datetime.now(timezone.utc)
    settings = config.outbound
    rows = claim(store, settings, now, settings["batch"])
    if not rows:
        return []
    results = asyncio.run(_send_all(settings, rows))
    record(store, settings, results, now)
    return results


def drain(store, config, now: datetime | None = None, rounds: int = 100) -> list[Result]:
    """Deliver until nothing is due (tests, ``ticketgate outbox send``)."""
    out = []
    for _ in range(rounds):
        results = deliver_due(store, config, now)
        if not results:
            break
        out += results
        if all(r.status != "sent" for r in results):
            break
    return out


def retry(store, outbound_id: int) -> bool:
    """Put a failed (or waiting) mail back in the queue, due now. False if unknown or sent."""
    with store.session() as session:
        row = session.get(OutboundMail, outbound_id)
        if row is None or row.status == "sent":
            return False
        row.status, row.next_attempt, row.claimed_until = "pending", utcnow(), None
        row.created = utcnow()   # a fresh give-up window
        return True


def job(app) -> None:
    """Daemon job: deliver what is due."""
    deliver_due(app.store, app.config)
