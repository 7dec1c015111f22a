"""Follow-up detection: is this mail about a ticket we already have, and which one?

Looked for in this order (config ``follow_up`` in ticketgate.yaml):
1. our ticket number in the subject (hook + number, case-insensitive, any Re:/AW:/Fwd: prefix);
2. ``In-Reply-To`` then ``References`` naming the Message-ID of one of our articles, incoming or
   sent (``search_references``, on by default);
3. our ticket number in the body text (``search_body``, off by default).
A match on a merged ticket always follows the merge chain to the surviving ticket, whichever
way it was found.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.mail import ParsedMail
from gateway.store.models import Article, Ticket
from gateway.ticket_number import TicketNumbers

MAX_MERGE_DEPTH = 50


@dataclass
class FollowUpMatch:
    ticket: Ticket
    how: str          # subject | in-reply-to | references | body
    detail: str       # the number or Message-ID that matched
    merged_from: list[str]  # numbers of merged tickets followed to reach ``ticket``

    def describe(self) -> str:
        text = f"follow-up to {self.ticket.number}: {self.how} names {self.detail}"
        if self.merged_from:
            text += f" (merged ticket {' -> '.join(self.merged_from)} -> {self.ticket.number})"
        return text


def _by_number(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.number == number)).scalar()


def _by_message_id(session: Session, message_id: str) -> Ticket | None:
    row = session.execute(
        select(Ticket).join(Article, Article.ticket_id == Ticket.id)
        .where(Article.message_id == message_id).order_by(Article.id.desc()).limit(1)).scalar()
    return row


def _follow_merges(session: Session, ticket: Ticket) -> tuple[Ticket, list[str]]:
    chain = []
    while ticket.merged_into_id is not None and len(chain) < MAX_MERGE_DEPTH:
        chain.append(ticket.number)
        target = session.get(Ticket, ticket.merged_into_id)
        if target is None:
            break
        ticket = target
    return ticket, chain


def find_ticket(session: Session, mail: ParsedMail, numbers: TicketNumbers,
                settings: dict) -> FollowUpMatch | None:
    candidates: list[tuple[str, str, callable]] = []
    for number in numbers.find(mail.subject):
        candidates.append(("subject", number, _by_number))
    if settings.get("search_references", True):
        for mid in mail.in_reply_to:
            candidates.append(("in-reply-to", mid, _by_message_id))
        for mid in reversed(mail.references):  # the newest reference is the most specific
            candidates.append(("references", mid, _by_message_id))
    if settings.get("search_body", False):
        for number in numbers.find(mail.body):
            candidates.append(("body", number, _by_number))
    for how, key, lookup in candidates:
        ticket = lookup(session, key)
        if ticket is not None:
            ticket, chain = _follow_merges(session, ticket)
            return FollowUpMatch(ticket, how, key, chain)
    return None
