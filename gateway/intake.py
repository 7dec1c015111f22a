"""Durable accept: the one door every ingest source (pipe, SMTP/LMTP, IMAP) goes through.

``accept()`` commits the raw bytes before anything else happens, so a sender may be told
"we have it" (exit 0 / 250 / IMAP flag) only after it returns. The dedup key is the SHA-256 of
the mail without the trace headers an MTA adds on the way (Received, Return-Path,
Delivered-To...), so the same mail delivered twice, even by two routes, is stored once; a
different mail that reuses a Message-ID has other bytes and is kept.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.store.db import Store
from gateway.store.models import InboundMail

TRACE_HEADERS = {b"received", b"return-path", b"delivered-to", b"x-original-to",
                 b"x-delivered-to", b"x-envelope-to", b"x-envelope-from", b"x-rcpt-to"}
_MSGID = re.compile(rb"^message-id:[ \t]*(.*?)\r?$", re.IGNORECASE | re.MULTILINE)


@dataclass
class Envelope:
    source: str = "pipe"               # pipe | smtp:NAME | lmtp:NAME | imap:ACCOUNT
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)
    trusted: bool = False              # may X-Ticket-* control headers be honoured?
    queue: str | None = None           # queue the source dispatches to (a mail account's)
    authenticated_user: str | None = None  # SMTP AUTH login of the session (submission)
    trust_authentication_results: bool = False  # the source's MTA strips foreign ones


@dataclass
class Accepted:
    inbound_id: int
    duplicate: bool


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos != -1:
            return raw[:pos + len(sep)], raw[pos + len(sep):]
    return raw, b""


def dedup_key(raw: bytes) -> str:
    head, body = _split_head(raw)
    digest = hashlib.sha256()
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                digest.update(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in TRACE_HEADERS
        if not skipping:
            digest.update(line.replace(b"\r\n", b"\n"))
    digest.update(body.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def message_id_of(raw: bytes) -> str | None:
    head, _ = _split_head(raw)
    m = _MSGID.search(head)
    if not m:
        return None
    # RFC 6532 allows UTF-8; the store's flush makes the value storable (NUL, length)
    return m.group(1).decode("utf-8", "replace").strip().strip("<>")[:998] or None


def _inbound_row(raw: bytes, key: str, envelope: Envelope) -> InboundMail:
    return InboundMail(dedup_key=key, message_id=message_id_of(raw), raw=raw, size=len(raw),
                       source=envelope.source, envelope_from=envelope.mail_from,
                       envelope_to=list(envelope.rcpt_to), trusted=envelope.trusted,
                       dispatch_queue=envelope.queue,
                       authenticated_user=envelope.authenticated_user,
                       trust_auth_results=envelope.trust_authentication_results,
                       status="pending",
                       attempts=0, trace=[])


def accept(store: Store, raw: bytes, envelope: Envelope | None = None) -> Accepted:
    """Commit the raw mail; return its inbound id. Raises on storage trouble (caller: 451/75)."""
    envelope = envelope or Envelope()
    key = dedup_key(raw)
    try:
        with store.session() as session:
            row = _inbound_row(raw, key, envelope)
            session.add(row)
            session.flush()
            return Accepted(row.id, False)
    except IntegrityError:
        with store.session() as session:
            existing = session.execute(
                select(InboundMail.id).where(InboundMail.dedup_key == key)).scalar()
        if existing is None:
            raise
        return Accepted(existing, True)


def accept_many(store: Store, items: list[tuple[bytes, Envelope]]) -> list[Accepted]:
    """Group commit: store several mails in ONE transaction (one fsync), e.g. the mails of many
    concurrent SMTP clients or a chunk of an IMAP folder. Same dedup rules as ``accept()``;
    results are in the order of ``items``. Raises on storage trouble: then nothing of the batch
    is acknowledged (each caller answers 451 / leaves the IMAP message unflagged)."""
    keys = [dedup_key(raw) for raw, _ in items]
    try:
        with store.session() as session:
            existing = dict(session.execute(
                select(InboundMail.dedup_key, InboundMail.id)
                .where(InboundMail.dedup_key.in_(set(keys)))).all())
            new_rows: dict[str, InboundMail] = {}
            for (raw, envelope), key in zip(items, keys):
                if key in existing or key in new_rows:
                    continue
                row = _inbound_row(raw, key, envelope or Envelope())
                session.add(row)
                new_rows[key] = row
            session.flush()
            results, seen = [], set()
            for key in keys:
                if key in existing:
                    results.append(Accepted(existing[key], True))
                else:
                    results.append(Accepted(new_rows[key].id, key in seen))
                    seen.add(key)
            return results
    except IntegrityError:
        # another process stored one of these between our SELECT and INSERT: one by one
        return [accept(store, raw, envelope) for raw, envelope in items]
