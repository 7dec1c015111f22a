"""The PostMaster pipeline: decide what a mail means, then act on it.

``decide()`` reads but never writes: pre-filters -> postmaster filters -> follow-up detection
-> routing. It returns a Decision with a trace of every step, which ``ticketgate test-mail``
prints and ``apply()`` stores in the ticket history. ``apply()`` writes the ticket, article,
attachments and history in the caller's transaction and then runs the after-apply hooks the
composition root gave it (the notifier's, in order) in that same transaction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from gateway import apply as applier
from gateway import routing
from gateway.config.model import Config
from gateway.followup import FollowUpMatch, find_ticket
from gateway.intake import Envelope
from gateway.mail import ParsedMail
from gateway.parts import Parts
from gateway.store.models import Ticket
from gateway.ticket_number import TicketNumbers


@dataclass
class TraceLine:
    step: str
    message: str
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"step": self.step, "message": self.message, **({"data": self.data}
                                                               if self.data else {})}


@dataclass
class Decision:
    mail: ParsedMail
    envelope: Envelope
    action: str = "new_ticket"   # new_ticket | follow_up | reject | new_ticket_closed | bounce | ignore
    reason: str = ""
    ticket: Ticket | None = None             # the existing ticket (follow-up, reject, bounce)
    match: FollowUpMatch | None = None
    settings: dict = field(default_factory=dict)            # filter sets for a new ticket
    follow_up_settings: dict = field(default_factory=dict)  # filter sets for a follow-up
    sender_type: str = "customer"
    agent: str | None = None
    flags: dict = field(default_factory=dict)   # auto_submitted, bounce, spam, ... (verdict data)
    auto_response: str | None = None
    auto_response_suppressed: str | None = None
    trace: list[TraceLine] = field(default_factory=list)
    agent_work: object = None   # gateway.agents.mail_commands.AgentWork for a proven agent's mail

    def note(self, step: str, message: str, **data) -> None:
        self.trace.append(TraceLine(step, message, data))


class Pipeline:
    """Holds the config-derived helpers and the parts it runs (pre-filters, after-apply
    hooks, message-ID lookups from gateway.app); one per loaded config (swapped on reload)."""

    # Per-mail budget for decide(): a step that starts after it is used up is skipped and the
    # mail is stored as a plain article (no follow-up search left, no commands, no auto-reply),
    # with a note in its history. The caps in the steps keep each step well below it.
    decide_budget = 5.0   # seconds

    def __init__(self, config: Config, parts: Parts):
        self.config = config
        self.numbers = TicketNumbers(config.ticket_number)
        self.steps = routing.build_steps(config)
        self.prefilters = parts.prefilters
        self.after_apply = parts.after_apply
        self.message_id_lookups = parts.message_id_lookups

    def decide(self, session: Session, mail: ParsedMail, envelope: Envelope) -> Decision:
        decision = Decision(mail=mail, envelope=envelope)
        deadline = time.monotonic() + self.decide_budget
        for done, step in enumerate(self.steps, 1):
            step(self, session, decision)
            if decision.action == "ignore":
                break
            if done < len(self.steps) and time.monotonic() > deadline:
                self._over_budget(decision, step, self.steps[done:])
                break
        return decision

    def _over_budget(self, decision: Decision, last, skipped) -> None:
        names = [getattr(s, "__name__", str(s)) for s in skipped]
        decision.flags["processing_budget"] = {"after": getattr(last, "__name__", str(last)),
                                               "skipped": names, "seconds": self.decide_budget}
        decision.note("budget", f"processing budget of {self.decide_budget:g} s used up after "
                                f"{getattr(last, '__name__', last)}; skipped: {', '.join(names)}"
                                f"; stored as a plain article")
        if decision.action in ("new_ticket", "new_ticket_closed") and \
                not decision.settings.get("queue"):
            decision.settings["queue"] = self.config.default_queue
        decision.auto_response = None
        decision.auto_response_suppressed = "processing budget used up"
        why = f"processing budget used up after {getattr(last, '__name__', last)}"
        decision.reason = f"{decision.reason}; {why}" if decision.reason else why

    def find_follow_up(self, session: Session, mail: ParsedMail) -> FollowUpMatch | None:
        return find_ticket(session, mail, self.numbers, self.config.follow_up,
                           self.message_id_lookups)

    def apply(self, session: Session, decision: Decision, inbound_id: int | None = None):
        """Write the decision; returns (ticket, article) or (None, None) for ignored mail."""
        ticket, article = applier.apply(self, session, decision, inbound_id)
        for hook in self.after_apply:
            hook.run(self, session, decision, ticket, article)
        return ticket, article
