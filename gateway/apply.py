"""Act on a Decision: create the ticket or add the article, set the ticket fields its outcome
names (gateway/outcome.py), and write every decision to the ticket history. Runs inside the
caller's transaction.
"""
from __future__ import annotations

from gateway import tickets
from gateway.agents.mail_commands import apply_changes
from gateway.outcome import Outcome, outcome_of
from gateway.store.models import AppliedAgentMail, Article, Ticket, message_key, utcnow

def apply(pipeline, session, decision, inbound_id):
    if decision.action == "ignore":
        return None, None
    outcome = outcome_of(pipeline.config, decision)   # before the ticket changes
    if decision.action in ("new_ticket", "new_ticket_closed"):
        ticket = _new_ticket(pipeline, session, decision, outcome)
    else:
        ticket = decision.ticket
    article = _article(session, ticket, decision, inbound_id)
    trace = [line.as_dict() for line in decision.trace]
    if decision.action in ("new_ticket", "new_ticket_closed"):
        tickets.add_history(session, ticket, "NewTicket",
                            f"new ticket in queue {ticket.queue!r}: {decision.reason or 'new mail'}",
                            article, trace=trace)
        if decision.action == "new_ticket_closed":
            old = decision.match.ticket
            tickets.add_history(session, old, "FollowUpNewTicket",
                                f"follow-up went to new ticket {ticket.number}: {decision.reason}",
                                None, new_ticket=ticket.number)
    elif decision.action == "follow_up":
        tickets.add_history(session, ticket, "FollowUp", decision.reason, article, trace=trace)
        if decision.sender_type != "agent":  # an agent's mail changes state by #commands only
            _follow_up_changes(session, ticket, article, decision, outcome)
        _agent_work(pipeline, session, ticket, article, decision)
    elif decision.action == "reject":
        tickets.add_history(session, ticket, "FollowUpRejected", decision.reason, article,
                            trace=trace)
    elif decision.action == "bounce":
        tickets.add_history(session, ticket, "Bounce", decision.reason, article, trace=trace,
                            recipients=decision.flags.get("bounce", {}).get("recipients", []))
    claim = decision.flags.get("agent_claim")
    if claim and claim.get("message"):
        tickets.add_history(session, ticket, "AgentClaimUnproven", claim["message"], article,
                            agent=claim["agent"], address=claim["address"],
                            failures=claim["failures"])
    if decision.auto_response:
        tickets.add_history(session, ticket, "AutoResponse",
                            f"{decision.auto_response}: " +
                            (f"suppressed ({decision.auto_response_suppressed})"
                             if decision.auto_response_suppressed else "requested"), article)
    _contact_times(ticket, article, decision)
    tickets.touch(ticket, pipeline.config)
    return ticket, article


def _new_ticket(pipeline, session, decision, outcome: Outcome) -> Ticket:
    for note in outcome.notes:
        decision.note("apply", note)
    now = utcnow()
    ticket = Ticket(
        number=pipeline.numbers.new_number(session, now), title=outcome.title,
        queue=outcome.queue, state=outcome.state, priority=outcome.priority, type=outcome.type,
        owner=outcome.owner, responsible=outcome.responsible, locked=outcome.lock,
        customer_user=outcome.customer_user, customer_id=outcome.customer_id,
        dynamic_fields=dict(outcome.dynamic_fields), created=now, changed=now)
    session.add(ticket)
    return ticket


def _article(session, ticket, decision, inbound_id) -> Article:
    mail = decision.mail
    kind = "bounce" if decision.action == "bounce" else "email"
    flags = {k: v for k, v in decision.flags.items()}
    if decision.auto_response:
        flags["auto_response"] = {"type": decision.auto_response,
                                  "suppressed": decision.auto_response_suppressed}
    if mail.defects:
        flags["defects"] = mail.defects[:50]
    article = Article(
        ticket=ticket, inbound_id=inbound_id, direction="in", sender_type=decision.sender_type,
        kind=kind, internal=kind == "bounce", from_addr=", ".join(map(str, mail.from_)),
        to_addr=", ".join(map(str, mail.to)), cc_addr=", ".join(map(str, mail.cc)),
        subject=mail.subject, body=mail.body, content_type=mail.content_type,
        message_id=mail.message_id, in_reply_to=" ".join(mail.in_reply_to) or None,
        references=" ".join(mail.references) or None, flags=flags, created=utcnow())
    session.add(article)
    tickets.add_attachments(session, article, mail.attachments)
    return article


def _follow_up_changes(session, ticket, article, decision, outcome: Outcome) -> None:
    """A customer's follow-up: each change with its history line, then the dynamic fields."""
    for note in outcome.notes:
        decision.note("apply", note)
    for change in outcome.changes:
        tickets.set_field(session, ticket, change.field, change.value, change.reason, article)
    if outcome.dynamic_fields != (ticket.dynamic_fields or {}):
        ticket.dynamic_fields = dict(outcome.dynamic_fields)


def _contact_times(ticket, article, decision) -> None:
    if decision.sender_type == "customer" and decision.action in ("new_ticket",
                                                                  "new_ticket_closed",
                                                                  "follow_up"):
        ticket.last_contact = article.created
    work = decision.agent_work
    if decision.sender_type == "agent" and work is not None and work.send:
        # an agent article sent to the customer: stops first response, restarts update
        if ticket.first_agent_contact is None:
            ticket.first_agent_contact = article.created
        ticket.last_contact = article.created


def _agent_work(pipeline, session, ticket, article, decision) -> None:
    """Apply an agent's accepted #commands (gateway/agents/mail_commands.py). Sending the reply
    to the customer and the answer about refused commands is the notifier's (an after-apply
    hook, in this transaction)."""
    work = decision.agent_work
    if decision.sender_type != "agent" or work is None:
        return
    agent = pipeline.config.agents[decision.agent]
    article.internal = not work.send
    article.flags = {**(article.flags or {}), "agent": agent.login,
                     "commands": [{"command": v.command.text, "ok": v.ok, "reason": v.reason}
                                  for v in work.verdicts]}
    apply_changes(session, ticket, article, work.verdicts, agent.login)
    if work.send and pipeline.config.state_type(ticket.state) == "new":
        tickets.set_field(session, ticket, "state", "open", "agent replied to the customer",
                          article)
    session.flush()
    if work.applied and decision.mail.message_id:   # a copy of this mail will not act again
        session.add(AppliedAgentMail(message_key=message_key(decision.mail.message_id),
                                     message_id=decision.mail.message_id, agent=agent.login,
                                     ticket_id=ticket.id, article_id=article.id))
    if not work.send:
        tickets.add_history(session, ticket, "AddNote",
                            f"agent {agent.login}'s article not sent to the customer "
                            f"({work.why_not_sent})", article)
