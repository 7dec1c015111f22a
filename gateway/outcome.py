"""What a decided mail does to its ticket: queue, state, priority, lock and the other fields,
and the auto-response asked for. ``gateway/apply.py`` sets the ticket from it and
``ticketgate test-mail`` shows it, so the dry run and real processing cannot drift apart.

``outcome_of(config, decision)`` only reads: call it before the ticket is changed.

Config keys read: ``states``, ``priorities``, ``default_priority``, ``default_queue``, the
system addresses, and each queue's ``follow_up_state`` and ``lock_after_follow_up``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from gateway.config.model import Config

NEW_TICKET_ACTIONS = ("new_ticket", "new_ticket_closed")
# what a customer's follow-up may change, in the order apply writes it
FOLLOW_UP_FIELDS = ("queue", "priority", "type", "owner", "responsible", "customer_id", "title")
# the ticket columns an agent's accepted #command may change (the rest is article data)
AGENT_COMMAND_FIELDS = ("state", "queue", "priority", "owner", "responsible", "locked")


@dataclass(frozen=True)
class Change:
    """One ticket field apply sets on a follow-up, with the reason its history line gives."""
    field: str
    value: object
    reason: str


@dataclass(frozen=True)
class Outcome:
    """The ticket as it is after the mail (all None for a dropped mail)."""
    action: str
    ticket: str | None = None           # number of the existing ticket the mail is about
    queue: str | None = None
    state: str | None = None
    priority: str | None = None
    lock: bool | None = None
    owner: str | None = None
    responsible: str | None = None
    type: str | None = None
    title: str | None = None
    customer_user: str | None = None
    customer_id: str | None = None
    dynamic_fields: dict = field(default_factory=dict)
    changes: tuple[Change, ...] = ()    # a customer's follow-up: what apply writes, in order
    auto_response: str | None = None
    auto_response_suppressed: str | None = None
    notes: tuple[str, ...] = ()         # unknown values replaced or ignored, for the trace


def outcome_of(config: Config, decision) -> Outcome:
    """The outcome of ``decision`` (a gateway.pipeline.Decision) under ``config``."""
    existing = decision.ticket
    common = {"action": decision.action, "ticket": existing.number if existing else None,
              "auto_response": decision.auto_response,
              "auto_response_suppressed": decision.auto_response_suppressed}
    if decision.action == "ignore":
        return Outcome(**common)
    if decision.action in NEW_TICKET_ACTIONS:
        return _new_ticket(config, decision, common)
    if existing is None:
        return Outcome(**common)
    if decision.action != "follow_up":     # reject, bounce: the ticket stays as it is
        return _after(existing, (), (), common)
    if decision.sender_type == "agent":
        return _agent_follow_up(config, decision, existing, common)
    return _customer_follow_up(config, decision, existing, common)


def _new_ticket(config: Config, decision, common: dict) -> Outcome:
    mail, s = decision.mail, decision.settings
    notes = []
    customer = mail.sender.email if mail.sender else None
    if decision.sender_type == "agent":  # an agent opening a ticket: the customer is the addressee
        others = [a.email for a in mail.to if not config.system_address(a.email)]
        customer = others[0] if others else customer
    state = s.get("state") or "new"
    if state not in config.states:
        notes.append(f"state {state!r} unknown: 'new' used")
        state = "new"
    priority = s.get("priority") or config.default_priority
    if priority not in config.priorities:
        notes.append(f"priority {priority!r} unknown: default used")
        priority = config.default_priority
    return Outcome(
        **common, queue=s.get("queue") or config.default_queue, state=state, priority=priority,
        lock=bool(s.get("lock")) and bool(s.get("owner")), owner=s.get("owner"),
        responsible=s.get("responsible"), type=s.get("type"),
        title=s.get("title") or mail.subject or "(no subject)",
        customer_user=s.get("customer_user") or customer, customer_id=s.get("customer_id"),
        dynamic_fields=dict(s.get("dynamic_fields") or {}), notes=tuple(notes))


def _customer_follow_up(config: Config, decision, ticket, common: dict) -> Outcome:
    """The queue's follow-up rules (reopen state, lock_after_follow_up), then the filters'
    set_on_follow_up values."""
    s = decision.follow_up_settings
    queue = config.queues.get(ticket.queue)
    was_closed = config.is_closed(ticket.state)
    notes, changes = [], []
    target = s.get("state")
    if target and target not in config.states:
        notes.append(f"follow-up state {target!r} unknown: ignored")
        target = None
    if target is None and config.state_type(ticket.state) != "new":
        target = queue.follow_up_state if (queue and was_closed) else "open"
    if target:
        changes.append(Change("state", target, "follow-up received"))
    if was_closed:
        lock_after = bool(queue and queue.lock_after_follow_up)
        changes.append(Change("locked", lock_after and bool(ticket.owner),
                              f"queue {ticket.queue!r} lock_after_follow_up: "
                              f"{'yes' if lock_after else 'no'}"))
    for key in FOLLOW_UP_FIELDS:
        if s.get(key):
            changes.append(Change(key, s[key], "filter on follow-up"))
    dynamic = dict(ticket.dynamic_fields or {})
    if s.get("dynamic_fields"):
        dynamic.update(s["dynamic_fields"])
    return _after(ticket, changes, notes, common, dynamic)


def _agent_follow_up(config: Config, decision, ticket, common: dict) -> Outcome:
    """An agent's mail changes the ticket by its accepted #commands only; a reply sent to the
    customer moves a new ticket to open. gateway/apply.py's _agent_work writes them."""
    work = decision.agent_work
    if work is None:
        return _after(ticket, (), (), common)
    predicted = []
    dynamic = dict(ticket.dynamic_fields or {})
    for verdict in work.verdicts:
        if not verdict.ok:
            continue
        for key, value in verdict.changes:
            if key in AGENT_COMMAND_FIELDS:
                predicted.append(Change(key, value, f"#{verdict.command.name} by "
                                                    f"{decision.agent}"))
            elif key.startswith("dynamic_field."):
                dynamic[key.split(".", 1)[1]] = value
    state = next((c.value for c in reversed(predicted) if c.field == "state"), ticket.state)
    if work.send and config.state_type(state) == "new":
        predicted.append(Change("state", "open", "agent replied to the customer"))
    return replace(_after(ticket, predicted, (), common, dynamic), changes=())


def _after(ticket, changes, notes, common: dict, dynamic: dict | None = None) -> Outcome:
    values = {"queue": ticket.queue, "state": ticket.state, "priority": ticket.priority,
              "locked": bool(ticket.locked), "owner": ticket.owner,
              "responsible": ticket.responsible, "type": ticket.type, "title": ticket.title,
              "customer_user": ticket.customer_user, "customer_id": ticket.customer_id}
    for change in changes:
        values[change.field] = change.value
    values["lock"] = values.pop("locked")
    return Outcome(**common, **values, changes=tuple(changes), notes=tuple(notes),
                   dynamic_fields=dict(ticket.dynamic_fields or {}) if dynamic is None
                   else dynamic)
