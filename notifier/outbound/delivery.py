"""Delivering the outbound queue: ``deliver_due()`` claims due rows with a lease
(``claimed_until``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite),
sends them through the smarthost with aiosmtplib and records the result: 2xx sent; 4xx and
connection trouble retried with growing backoff until ``give_up_after`` (RFC 5321 4.5.4.1,
default 4 days); 5xx failed at once. A failure is written to the ticket history. A crash
between the SMTP answer and the commit can send a row again after its lease ends (at least
once, never silently lost); a claimed row is never sent by two workers at the same time."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import aiosmtplib
from sqlalchemy import or_, select

from gateway.store.models import OutboundMail, Ticket
from gateway.tickets import add_history

log = logging.getLogger("ticketgate.outbox")
BACKOFF_SECONDS = (60, 120, 300, 600, 1200, 1800, 3600)


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


def job(app) -> None:
    """Daemon job: deliver what is due."""
    deliver_due(app.store, app.config)
