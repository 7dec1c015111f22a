"""Act on a Decision: create the ticket or add the article, apply the follow-up rules, and
write every decision to the ticket history. Runs inside the caller's transaction.
"""
from __future__ import annotations

from gateway import tickets
from gateway.agents.mail_commands import apply_changes
from gateway.store.models import Article, Ticket, utcnow

TICKET_FIELDS = ("queue", "priority", "state", "type", "owner", "responsible", "customer_id",
                 "customer_user", "title")


def apply(pipeline, session, decision, inbound_id):
    if decision.action == "ignore":
        return None, None
    if decision.action in ("new_ticket", "new_ticket_closed"):
        ticket = _new_ticket(pipeline, session, decision)
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
            _follow_up_changes(pipeline, session, ticket, article, decision)
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


def _new_ticket(pipeline, session, decision) -> Ticket:
    config, mail, s = pipeline.config, decision.mail, decision.settings
    customer = mail.sender.email if mail.sender else None
    if decision.sender_type == "agent":  # an agent opening a ticket: the customer is the addressee
        others = [a.email for a in mail.to if not config.system_address(a.email)]
        customer = others[0] if others else customer
    state = s.get("state") or "new"
    if state not in config.states:
        decision.note("apply", f"state {state!r} unknown: 'new' used")
        state = "new"
    priority = s.get("priority") or config.default_priority
    if priority not in config.priorities:
        decision.note("apply", f"priority {priority!r} unknown: default used")
        priority = config.default_priority
    now = utcnow()
    ticket = Ticket(
        number=pipeline.numbers.new_number(session, now), title=s.get("title") or mail.subject
        or "(no subject)", queue=s.get("queue") or config.default_queue, state=state,
        priority=priority, type=s.get("type"), owner=s.get("owner"),
        responsible=s.get("responsible"), locked=bool(s.get("lock")) and bool(s.get("owner")),
        customer_user=s.get("customer_user") or customer, customer_id=s.get("customer_id"),
        dynamic_fields=dict(s.get("dynamic_fields") or {}), created=now, changed=now)
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


def _follow_up_changes(pipeline, session, ticket, article, decision) -> None:
    config = pipeline.config
    s = decision.follow_up_settings
    queue = config.queues.get(ticket.queue)
    was_closed = config.is_closed(ticket.state)
    target = s.get("state")
    if target and target not in config.states:
        decision.note("apply", f"follow-up state {target!r} unknown: ignored")
        target = None
    if target is None and config.state_type(ticket.state) != "new":
        target = queue.follow_up_state if (queue and was_closed) else "open"
    if target:
        tickets.set_field(session, ticket, "state", target, "follow-up received", article)
    if was_closed:
        lock = bool(queue and queue.lock_after_follow_up and ticket.owner)
        why = (f"queue {ticket.queue!r} lock_after_follow_up: "
               f"{'yes' if queue and queue.lock_after_follow_up else 'no'}")
        tickets.set_field(session, ticket, "locked", lock, why, article)
    for key in ("queue", "priority", "type", "owner", "responsible", "customer_id", "title"):
        if s.get(key):
            tickets.set_field(session, ticket, key, s[key], "filter on follow-up", article)
    if s.get("dynamic_fields"):
        ticket.dynamic_fields = {**(ticket.dynamic_fields or {}), **s["dynamic_fields"]}


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
    if not work.send:
        tickets.add_history(session, ticket, "AddNote",
                            f"agent {agent.login}'s article not sent to the customer "
                            f"({work.why_not_sent})", article)
