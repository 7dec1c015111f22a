"""``ticketgate test-mail`` says what processing then does, for every mail in the shared
corpus: action, ticket, queue, state, priority, lock, the notes about unknown values and the
auto-response (requested or suppressed, and why). Both take the outcome from
gateway/outcome.py; this test keeps it that way.

One app and one database serve the whole corpus, so each mail's dry run runs right before
its own processing (earlier mails made the tickets later ones follow up on). Test rules in
conf/ spread the mails over queues, owners, locks and closed tickets; a second round sends a
quarter of the mails again as replies to earlier tickets, so follow-ups meet each queue's
follow-up option (reopen, reject, new ticket) and lock_after_follow_up, some with trusted
X-Ticket-* headers that name unknown states and priorities.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from itertools import zip_longest

import yaml
from sqlalchemy import select

from filters.explain import explain, render_text
from gateway.intake import Envelope, accept
from gateway.mail import parse
from gateway.processing import process_inbound
from gateway.store.models import Article, History, InboundMail, Ticket
from tests.corpus import MAIL_DIRS, mail_files, require_corpus
from tests.mails import make_mail
from tests.test_agent_identity import (agent_app, agent_mail, customer_ticket,  # noqa: F401
                                       ingest_with, outbox, reply_address)

COMPARED = ("action", "ticket", "queue", "state", "priority", "lock", "notes",
            "auto_response", "auto_response_suppressed")

# Deliberate differences between the dry run and processing: {(mail, key): reason}.
# ``mail`` is the path under the corpus (a follow-up copy adds " (follow-up)"). Keep it empty:
# an entry here is a place where test-mail tells an admin something processing does not do.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}

VARIETY_RULES = """
- name: variety-ignored
  match: {subject: '^\\['}
  set: {ignore: yes}
- name: variety-closed-vip
  match: {subject: '^[A-CEa-ce]'}
  set: {queue: VIP, state: closed successful, owner: tmoore, lock: yes}
- name: variety-closed-purchases
  match: {subject: '^[DG-Ldg-l]'}
  set: {queue: Large Hardware Purchases, state: closed unsuccessful}
- name: variety-closed-printer
  match: {subject: '^[M-Pm-p]'}
  set: {queue: "Hardware::Printer", state: closed successful, owner: tmoore}
- name: variety-open-hardware
  match: {subject: '^[Q-Tq-t]'}
  set: {queue: Hardware, state: open, owner: nsmith, priority: 5 very high}
- name: variety-follow-up
  match: {subject: '^[U-Zu-z]'}
  set_on_follow_up: {priority: 1 very low, owner: jdoe}
"""

# trusted control headers the follow-up copies carry, in turn (filters drop values that name
# no state or priority; these headers are taken as they are, so apply's notes appear)
FOLLOW_UP_HEADERS = ((), ("X-Ticket-FollowUp-State: pending reminder",),
                     ("X-Ticket-FollowUp-State: no such state", "X-Ticket-State: no such state",
                      "X-Ticket-Priority: 0 unheard of"),
                     ("X-Ticket-FollowUp-Priority: 9 no such priority",
                      "X-Ticket-FollowUp-Owner: mlee"),
                     ("X-Ticket-FollowUp-State: open", "X-Ticket-FollowUp-Queue: QA"))


def _configure(conf_dir) -> None:
    (conf_dir / "filters.d" / "90-variety.yaml").write_text(VARIETY_RULES)
    path = conf_dir / "queues.yaml"
    queues = yaml.safe_load(path.read_text())
    queues["queues"]["VIP"]["follow_up_state"] = "new"     # a reopened ticket that is new again
    path.write_text(yaml.safe_dump(queues, allow_unicode=True))


def _dry_run(app, raw: bytes, envelope: Envelope) -> dict:
    """What test-mail computes: the decision in a read-only session, explained."""
    with app.store.read_session() as session:
        info = explain(app.pipeline.decide(session, parse(raw), envelope), app.config)
    return {key: info[key] for key in COMPARED}


def _processed(app, inbound_id: int) -> dict:
    """The same keys, read back from the stored inbound row, ticket, article and history."""
    with app.store.read_session() as s:
        row = s.get(InboundMail, inbound_id)
        notes = [line["message"] for line in row.trace if line["step"] == "apply"]
        article = s.execute(select(Article).where(Article.inbound_id == inbound_id)).scalar()
        if article is None:
            return dict.fromkeys(COMPARED) | {"action": "ignore", "notes": notes}
        ticket = article.ticket
        kinds = s.execute(select(History.type).where(History.article_id == article.id)
                          .order_by(History.id)).scalars().all()
        action = next(a for kind, a in (("NewTicket", "new_ticket"), ("FollowUp", "follow_up"),
                                        ("FollowUpRejected", "reject"), ("Bounce", "bounce"))
                      if kind in kinds)
        number = None if action == "new_ticket" else ticket.number
        if action == "new_ticket":
            instead = s.execute(select(History).where(History.type == "FollowUpNewTicket")
                                .order_by(History.id.desc()).limit(1)).scalar()
            if instead is not None and instead.data.get("new_ticket") == ticket.number:
                action, number = "new_ticket_closed", instead.ticket.number
        auto = (article.flags or {}).get("auto_response") or {}
        return {"action": action, "ticket": number, "queue": ticket.queue,
                "state": ticket.state, "priority": ticket.priority, "lock": ticket.locked,
                "notes": notes, "auto_response": auto.get("type"),
                "auto_response_suppressed": auto.get("suppressed")}


def _reply_targets(app, inbound_ids: list[int]) -> list[str]:
    """Message-IDs of tickets the mails opened, taking each queue in turn (so every queue's
    follow-up option is met) and each ticket once."""
    by_queue = defaultdict(list)
    with app.store.read_session() as s:
        for queue, message_id in s.execute(
                select(Ticket.queue, Article.message_id).join(Article.ticket)
                .where(Article.inbound_id.in_(inbound_ids), Article.message_id.is_not(None))
                .order_by(Article.id)):
            by_queue[queue].append(message_id)
    rounds = zip_longest(*(by_queue[q] for q in sorted(by_queue)))
    return [message_id for row in rounds for message_id in row if message_id]


def _as_reply(raw: bytes, message_id: str, headers) -> bytes:
    """The mail with an In-Reply-To naming ``message_id`` and ``headers`` on top (after an
    mbox "From " line)."""
    eol = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    added = b"".join(line.encode() + eol for line in (f"In-Reply-To: <{message_id}>", *headers))
    if raw.startswith(b"From "):
        first, _, rest = raw.partition(b"\n")
        return first + b"\n" + added + rest
    return added + raw


def test_dry_run_matches_processing_for_every_corpus_mail(conf_dir, make_app):
    root = require_corpus()
    files = [path for sub in MAIL_DIRS for path in mail_files(sub)]
    assert files, f"no mails found under {root}"
    _configure(conf_dir)
    app = make_app()
    mismatches, reached, opened = [], Counter(), []

    def compare(name: str, raw: bytes, envelope: Envelope) -> None:
        predicted = _dry_run(app, raw, envelope)
        accepted = accept(app.store, raw, envelope)
        if accepted.duplicate:          # the same mail again: intake stores it once
            reached["duplicate"] += 1
            return
        done = process_inbound(app.store, app.pipeline, accepted.inbound_id)
        assert done.status in ("done", "ignored"), f"{name}: {done.status} {done.error}"
        stored = _processed(app, accepted.inbound_id)
        reached[stored["action"]] += 1
        reached["notes"] += bool(stored["notes"])
        reached["locked"] += bool(stored["lock"])
        reached["auto-response suppressed"] += bool(stored["auto_response_suppressed"])
        if stored["action"] == "new_ticket":
            opened.append(accepted.inbound_id)
        for key in COMPARED:
            if predicted[key] != stored[key] and (name, key) not in KNOWN_DIFFERENCES:
                mismatches.append(f"{name}: {key}: test-mail {predicted[key]!r}, "
                                  f"processing {stored[key]!r}")

    mails = [(str(path.relative_to(root)), path.read_bytes()) for path in files]
    mails = [(name, raw) for name, raw in mails if raw.strip()]
    for name, raw in mails:
        compare(name, raw, Envelope())

    targets = _reply_targets(app, opened)
    for n, (name, raw) in enumerate(mails[::4]):
        compare(f"{name} (follow-up)", _as_reply(raw, targets[n // 2 % len(targets)],
                                                 FOLLOW_UP_HEADERS[n % len(FOLLOW_UP_HEADERS)]),
                Envelope(trusted=True))

    assert not mismatches, f"{len(mismatches)} disagreements:\n" + "\n".join(mismatches[:50])
    for what in ("new_ticket", "new_ticket_closed", "follow_up", "reject", "bounce", "ignore",
                 "notes", "locked", "auto-response suppressed"):
        assert reached[what] >= 5, f"too few {what!r} to compare: {dict(reached)}"
    print(f"\ncompared: {dict(reached)}")


def test_dry_run_shows_the_lock_and_the_notes_processing_writes(app):
    raw = make_mail(subject="Printer on fire", headers={
        "X-Ticket-State": "waiting for Godot", "X-Ticket-Owner": "tmoore",
        "X-Ticket-Lock": "yes"})
    with app.store.read_session() as session:
        decision = app.pipeline.decide(session, parse(raw), Envelope(trusted=True))
        text = render_text(decision, app.config)
    assert "   lock:          yes" in text
    assert "   note: state 'waiting for Godot' unknown: 'new' used" in text
    predicted = _dry_run(app, raw, Envelope(trusted=True))
    done = ingest_with(app, raw, trusted=True)
    assert _processed(app, done.inbound_id) == predicted
    assert (predicted["state"], predicted["lock"], predicted["notes"]) == (
        "new", True, ["state 'waiting for Godot' unknown: 'new' used"])


def test_agent_reply_dry_run_matches_processing(agent_app, outbox):
    """An agent's mail changes the ticket by its #commands (and a reply opens a new ticket),
    not by the customer follow-up rules: test-mail says so too."""
    ticket = customer_ticket(agent_app)
    raw = agent_mail(ticket, body="#priority 4\n#lock\nThe printer works again.",
                     to=reply_address(agent_app, "tmoore", ticket.id))
    predicted = _dry_run(agent_app, raw, Envelope())
    done = ingest_with(agent_app, raw)
    assert _processed(agent_app, done.inbound_id) == predicted
    assert (predicted["action"], predicted["ticket"], predicted["state"],
            predicted["priority"], predicted["lock"]) == (
        "follow_up", ticket.number, "open", "4 high", True)
    assert predicted["auto_response_suppressed"] == "sender is an agent"
