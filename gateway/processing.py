"""Process accepted mail: one transaction per mail, idempotent, and never blocking the rest.

A pending inbound row is parsed, decided and applied in one transaction that also marks the
row done; a crash anywhere in between rolls back to "pending", and the next run (daemon start,
``ticketgate process``, the next ``ingest``) does it again, making exactly one article.
A mail whose processing fails for a non-transient reason (a bug, a mail we cannot handle) has
its attempts counted; after ``processing.max_attempts`` it is quarantined, where
``ticketgate quarantine`` lists it and ``ticketgate reprocess ID`` retries it. It is never
deleted. A transient failure (the store busy or away, told by SQLSTATE / SQLite result code,
gateway.store.db.is_transient) is not counted: that mail is tried again on the next run, and
the mails behind it are still processed now unless the store is unavailable altogether.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import defer

from gateway.failpoints import failpoint
from gateway.intake import Envelope
from gateway.mail import parse
from gateway.pipeline import Pipeline
from gateway.store.db import Store, describe_error, is_transient, is_unavailable
from gateway.store.models import InboundMail, utcnow

log = logging.getLogger("ticketgate.processing")


@dataclass
class Outcome:
    inbound_id: int
    status: str                 # done | ignored | failed | quarantined | transient | skipped
    action: str | None = None
    ticket_number: str | None = None
    error: str | None = None
    unavailable: bool = False   # transient because the store is away: stop draining for now


def _transient(inbound_id: int, exc: BaseException) -> Outcome:
    return Outcome(inbound_id, "transient", error=describe_error(exc),
                   unavailable=is_unavailable(exc))


def envelope_of(row: InboundMail) -> Envelope:
    return Envelope(source=row.source, mail_from=row.envelope_from,
                    rcpt_to=list(row.envelope_to or []), trusted=row.trusted,
                    queue=row.dispatch_queue,
                    authenticated_user=row.authenticated_user,
                    trust_authentication_results=bool(row.trust_auth_results))


def _parse_pending(store: Store, inbound_ids: list[int]) -> dict:
    """Parse outside the write transaction (parsing is the slow, lock-free part). A mail the
    parser fails on maps to its exception: that mail's failure, not the batch's."""
    with store.read_session() as session:
        rows = session.execute(select(InboundMail.id, InboundMail.raw).where(
            InboundMail.id.in_(inbound_ids), InboundMail.status == "pending")).all()
    mails = {}
    for row in rows:
        try:
            mails[row.id] = parse(row.raw)
        except Exception as exc:  # noqa: BLE001 - recorded as this mail's attempt
            mails[row.id] = exc
    return mails


def _pending_rows(session, store: Store, inbound_ids: list[int]) -> list[InboundMail]:
    query = select(InboundMail).options(defer(InboundMail.raw)).where(
        InboundMail.id.in_(inbound_ids), InboundMail.status == "pending") \
        .order_by(InboundMail.id)
    if store.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).scalars().all()


def process_inbound(store: Store, pipeline: Pipeline, inbound_id: int) -> Outcome:
    try:
        mails = _parse_pending(store, [inbound_id])
        if not mails:
            return Outcome(inbound_id, "skipped")
        if isinstance(mails[inbound_id], Exception):
            raise mails[inbound_id]
        with store.session() as session:
            rows = _pending_rows(session, store, [inbound_id])
            if not rows:
                return Outcome(inbound_id, "skipped")   # another worker was faster
            outcome = _process_row(session, pipeline, rows[0], mails[inbound_id])
            failpoint("BEFORE_COMMIT")
            return outcome
    except Exception as exc:  # noqa: BLE001 - the stage boundary: record, never lose the mail
        if is_transient(exc):
            log.warning("mail %s: transient failure, will retry: %s", inbound_id,
                        describe_error(exc))
            return _transient(inbound_id, exc)
        log.exception("mail %s: processing failed", inbound_id)
        return _record_failure(store, pipeline, inbound_id, exc)


def process_batch(store: Store, pipeline: Pipeline, inbound_ids: list[int]) -> list[Outcome]:
    """Process several pending mails in ONE transaction (one commit, one fsync), each inside
    its own SAVEPOINT so a mail that fails rolls back alone and is retried on its own later.
    Used by the daemon's worker for throughput; results equal one-by-one processing."""
    outcomes: list[Outcome] = []
    failed: list[tuple[int, Exception]] = []
    try:
        mails = _parse_pending(store, inbound_ids)
        with store.session() as session:
            for row in _pending_rows(session, store, list(mails)):
                mail = mails[row.id]
                if isinstance(mail, Exception):
                    failed.append((row.id, mail))
                    continue
                try:
                    with session.begin_nested():
                        outcomes.append(_process_row(session, pipeline, row, mail))
                except Exception as exc:  # noqa: BLE001 - one bad mail must not block the rest
                    if is_unavailable(exc):
                        raise
                    if is_transient(exc):   # e.g. a lock conflict: this mail waits, alone
                        log.warning("mail %s: transient failure, will retry: %s", row.id,
                                    describe_error(exc))
                        outcomes.append(_transient(row.id, exc))
                        continue
                    log.exception("mail %s: processing failed", row.id)
                    failed.append((row.id, exc))
            failpoint("BEFORE_COMMIT")
    except Exception as exc:  # noqa: BLE001 - the stage boundary
        if not is_transient(exc):
            raise
        log.warning("batch of %d: transient failure, will retry: %s", len(inbound_ids),
                    describe_error(exc))
        return [_transient(i, exc) for i in inbound_ids]
    for inbound_id, exc in failed:
        outcomes.append(_record_failure(store, pipeline, inbound_id, exc))
    return outcomes


def _process_row(session, pipeline: Pipeline, row: InboundMail, mail) -> Outcome:
    decision = pipeline.decide(session, mail, envelope_of(row))
    ticket, _article = pipeline.apply(session, decision, row.id)
    row.status = "ignored" if ticket is None else "done"
    row.processed_at = utcnow()
    if ticket is not None and ticket.id is None:
        session.flush()   # nothing in apply or the hooks needed the id yet
    row.ticket_id = ticket.id if ticket is not None else None
    row.trace = [line.as_dict() for line in decision.trace]
    row.error = None if ticket is not None else f"ignored: {decision.reason}"  # marked
    if ticket is None:
        log.warning("mail %s (Message-ID %s, from %s) ignored: %s", row.id, row.message_id,
                    row.envelope_from, decision.reason)
    number = ticket.number if ticket is not None else None
    log.info("mail %s: %s %s", row.id, decision.action, number or "")
    return Outcome(row.id, row.status, decision.action, number)


def _record_failure(store: Store, pipeline: Pipeline, inbound_id: int, exc: Exception) -> Outcome:
    limit = pipeline.config.processing["max_attempts"]
    if isinstance(exc, DBAPIError):   # the cause, not the SQL and its parameters (the mail)
        text = describe_error(exc, limit=1000)
    else:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    try:
        with store.session() as session:
            row = session.get(InboundMail, inbound_id)
            row.attempts = (row.attempts or 0) + 1
            row.error = text[:4000]
            if row.attempts >= limit:
                row.status = "quarantined"
            status = "quarantined" if row.status == "quarantined" else "failed"
    except Exception as exc2:  # noqa: BLE001
        log.error("mail %s: could not record failure: %s", inbound_id, describe_error(exc2))
        return Outcome(inbound_id, "transient", error=text, unavailable=is_unavailable(exc2))
    return Outcome(inbound_id, status, error=text)


def pending_ids(store: Store, limit: int = 1000) -> list[int]:
    with store.read_session() as session:
        return list(session.execute(
            select(InboundMail.id).where(InboundMail.status == "pending")
            .order_by(InboundMail.id).limit(limit)).scalars())


def process_pending(store: Store, pipeline: Pipeline, limit: int = 1000,
                    batch: int = 1) -> list[Outcome]:
    """Drain pending mail, oldest first, ``batch`` mails per transaction. A failing mail is
    retried on a later run (up to max_attempts), and a mail with a transient failure on the
    next run, so one mail never blocks the ones behind it; only a store that is unavailable
    (connection lost, disk full, read-only...) ends the run early."""
    outcomes = []
    ids = pending_ids(store, limit)
    for start in range(0, len(ids), max(batch, 1)):
        chunk = ids[start:start + max(batch, 1)]
        results = process_batch(store, pipeline, chunk) if len(chunk) > 1 else \
            [process_inbound(store, pipeline, chunk[0])]
        outcomes.extend(results)
        if any(o.unavailable for o in results):
            break  # the store is away; try again later rather than hammering it
    return outcomes


def requeue(store: Store, inbound_id: int) -> bool:
    """Put a quarantined (or failed) mail back to pending, attempts reset."""
    with store.session() as session:
        result = session.execute(
            update(InboundMail).where(InboundMail.id == inbound_id,
                                      InboundMail.status.in_(("quarantined", "pending")))
            .values(status="pending", attempts=0, error=None))
        return result.rowcount > 0
