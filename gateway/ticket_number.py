"""Ticket numbers: generate them (unique under concurrent ingestion) and find ours in text.

Generators (``ticket_number.generator`` in ticketgate.yaml):
- ``date_checksum`` (default): YYYYMMDD + system id + daily counter (5+ digits) + check digit.
- ``autoincrement``: system id + counter, zero-padded to ``min_counter_size``.
The counter lives in the ``counter`` table and is incremented with one atomic UPSERT, so two
processes never draw the same number. Recognition requires our hook, our system id and (for
date_checksum) a valid check digit, so numbers of other systems are not mistaken for ours.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store.models import Counter


def check_digit(digits: str) -> int:
    """Weighted mod-10 digit (weights 1,2,1,2...): catches single typos and most swaps."""
    total = sum(int(d) * (1 + i % 2) for i, d in enumerate(digits))
    digit = 10 - total % 10
    return 1 if digit == 10 else digit


def _next_counter(session: Session, name: str) -> int:
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert is not None:
        stmt = insert(Counter).values(name=name, value=1)
        stmt = stmt.on_conflict_do_update(index_elements=[Counter.name],
                                          set_={"value": Counter.value + 1})
        return session.execute(stmt.returning(Counter.value)).scalar_one()
    row = session.execute(select(Counter).where(Counter.name == name).with_for_update()).scalar()
    if row is None:
        row = Counter(name=name, value=0)
        session.add(row)
    row.value += 1
    session.flush()
    return row.value


class TicketNumbers:
    def __init__(self, settings: dict):
        self.generator = settings["generator"]
        self.system_id = settings["system_id"]
        self.hook = settings["hook"]
        self.divider = settings["divider"]
        self.min_counter = settings["min_counter_size"]
        sid = re.escape(self.system_id)
        if self.generator == "date_checksum":
            number = rf"\d{{8}}{sid}\d{{6,}}"
        else:
            number = rf"{sid}\d{{{max(self.min_counter, 1)},}}"
        # The hook must not sit inside a larger word, and the number must end at a non-digit.
        self._pattern = re.compile(
            rf"(?<![\w#]){re.escape(self.hook)}{re.escape(self.divider)}\s*({number})(?![\w])",
            re.IGNORECASE)
        self._bare = re.compile(rf"(?<![\w])({number})(?![\w])")

    def new_number(self, session: Session, now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        if self.generator == "date_checksum":
            day = now.strftime("%Y%m%d")
            counter = _next_counter(session, f"ticket-number:{day}")
            stem = f"{day}{self.system_id}{counter:05d}"
            return f"{stem}{check_digit(stem)}"
        counter = _next_counter(session, "ticket-number")
        return f"{self.system_id}{counter:0{self.min_counter}d}"

    def valid(self, number: str) -> bool:
        if self.generator == "date_checksum":
            return (number[8:8 + len(self.system_id)] == self.system_id
                    and check_digit(number[:-1]) == int(number[-1]))
        return number.startswith(self.system_id)

    def subject_hook(self, number: str) -> str:
        return f"[{self.hook}{self.divider}{number}]"

    def find(self, text: str, *, bare: bool = False) -> list[str]:
        """Our ticket numbers in ``text`` (with our hook; ``bare`` also without it), in order."""
        found = [m.group(1) for m in self._pattern.finditer(text or "")]
        if bare:
            found += [m.group(1) for m in self._bare.finditer(text or "")]
        seen, out = set(), []
        for n in found:
            if n not in seen and self.valid(n):
                seen.add(n)
                out.append(n)
        return out

    def add_to_subject(self, subject: str, number: str) -> str:
        if number in self.find(subject):
            return subject
        return f"{self.subject_hook(number)} {subject}".strip()
