"""Follow-up detection: is this mail about a ticket we already have, and which one?

Looked for in this order (config ``follow_up`` in ticketgate.yaml):
1. our ticket number in the subject (hook + number, case-insensitive, any Re:/AW:/Fwd: prefix);
2. ``In-Reply-To`` then ``References`` naming the Message-ID of one of our articles, incoming or
   sent (``references: always`` by default; ``subject_match`` trusts such a match only when the
   subject is the referenced article's or the mail is an auto-reply; ``off``);
3. our ticket number in the body text (``search_body``, off by default);
4. our ticket number in text attachments (``search_attachments``, off by default).
A match on a merged ticket always follows the merge chain to the surviving ticket, whichever
way it was found.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.mail import ParsedMail
from gateway.mail.text import html_to_text
from gateway.store.models import Article, Ticket
from gateway.ticket_number import TicketNumbers

MAX_MERGE_DEPTH = 50
# Work per mail is bounded: a mail may name 100,000 Message-IDs (each one a query). Only the
# newest References (the most specific: the mail it answers and its closest ancestors) and the
# first In-Reply-To entries are looked up; an ID longer than any real one is not looked up.
MAX_REFERENCES = 20
MAX_IN_REPLY_TO = 5
MAX_MESSAGE_ID = 998        # RFC 5322 line limit: no real Message-ID is longer


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


def _article_by_message_id(session: Session, message_id: str) -> Article | None:
    """The newest article with this Message-ID (two tickets may share one: take the newer)."""
    return session.execute(select(Article).where(Article.message_id == message_id)
                           .order_by(Article.id.desc()).limit(1)).scalar()


def _by_message_id(session: Session, message_id: str, lookups=()) -> Ticket | None:
    """The ticket of our article with this Message-ID, else of another mail of ours that
    ``lookups`` (gateway.parts.MessageIdLookup, e.g. the outbound queue) knows."""
    article = _article_by_message_id(session, message_id)
    if article is not None:
        return article.ticket
    for lookup in lookups:
        ticket = lookup.find(session, message_id)
        if ticket is not None:
            return ticket
    return None


_REPLY_PREFIX = re.compile(r"^\s*((re|aw|fwd?|wg|sv|antw|vs|tr|rif|r)\s*(\[\d+\])?\s*:\s*)+",
                           re.IGNORECASE)


def normalise_subject(subject: str) -> str:
    return " ".join(_REPLY_PREFIX.sub("", subject or "").split()).lower()


def _reference_trusted(mode: str, mail: ParsedMail, article: Article) -> bool:
    """``references: subject_match`` trusts a Message-ID match only when the subject is the
    referenced article's (minus Re:/AW: prefixes) or the mail is an auto-reply to it."""
    if mode == "always":
        return True
    if (mail.header("Auto-Submitted") or "").strip().lower().startswith("auto-replied"):
        return True
    return normalise_subject(mail.subject) == normalise_subject(article.subject)


def _attachment_texts(mail: ParsedMail) -> list[str]:
    texts = []
    for att in mail.attachments:
        if att.content_type in ("text/plain", "text/html") and len(att.data) < 1_000_000:
            text = att.data.decode("utf-8", "replace")
            texts.append(html_to_text(text) if att.content_type == "text/html" else text)
    return texts


def _follow_merges(session: Session, ticket: Ticket) -> tuple[Ticket, list[str]]:
    chain = []
    while ticket.merged_into_id is not None and len(chain) < MAX_MERGE_DEPTH:
        chain.append(ticket.number)
        target = session.get(Ticket, ticket.merged_into_id)
        if target is None:
            break
        ticket = target
    return ticket, chain


def lookup_ids(ids: list[str], limit: int, newest: bool) -> list[str]:
    """At most ``limit`` distinct Message-IDs of ``ids`` worth a lookup, in lookup order:
    newest first (the end of References) or in header order (In-Reply-To)."""
    out: list[str] = []
    for mid in (reversed(ids) if newest else ids):
        if len(mid) <= MAX_MESSAGE_ID and mid not in out:
            out.append(mid)
            if len(out) == limit:
                break
    return out


def find_ticket(session: Session, mail: ParsedMail, numbers: TicketNumbers,
                settings: dict, lookups=()) -> FollowUpMatch | None:
    candidates: list[tuple[str, str, callable]] = []
    for number in numbers.find(mail.subject):
        candidates.append(("subject", number, _by_number))
    mode = settings["references"]
    if mode != "off":
        def by_reference(session, mid):
            article = _article_by_message_id(session, mid)
            if article is not None:
                return article.ticket if _reference_trusted(mode, mail, article) else None
            if mode == "always":  # a mail we sent that is not an article (e.g. a notification)
                return _by_message_id(session, mid, lookups)
            return None

        for mid in lookup_ids(mail.in_reply_to, MAX_IN_REPLY_TO, newest=False):
            candidates.append(("in-reply-to", mid, by_reference))
        for mid in lookup_ids(mail.references, MAX_REFERENCES, newest=True):
            candidates.append(("references", mid, by_reference))
    if settings["search_body"]:
        for number in numbers.find(mail.body):
            candidates.append(("body", number, _by_number))
    if settings["search_attachments"]:
        for text in _attachment_texts(mail):
            for number in numbers.find(text):
                candidates.append(("attachment", number, _by_number))
    for how, key, lookup in candidates:
        ticket = lookup(session, key)
        if ticket is not None:
            ticket, chain = _follow_merges(session, ticket)
            return FollowUpMatch(ticket, how, key, chain)
    return None
