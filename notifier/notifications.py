"""Agent notifications: new ticket, follow-up, follow-up on a locked ticket (owner only),
rejected follow-up, escalation warnings and breaches, unlock timeout, pending reminder.

Recipients: agents with at least ``ro`` on the queue's group (through roles, or direct rights
when allowed), plus owner and responsible; an agent who set ``notifications: {EVENT: no}`` is
skipped, and so is the agent whose own mail caused the event. Texts come from
``templates/notifications/<Event>.txt`` when present, else a built-in one. A notification
that cannot be built is skipped alone (a history line says why); the others go."""
from __future__ import annotations

import logging

from gateway.ticket_number import TicketNumbers
from gateway.tickets import add_history
from notifier import loopguard, message
from notifier.autoresponse import context
from notifier.senders import system_sender
from notifier.outbound.queue import one_mail, outbound_row
from notifier.templates import RenderError

log = logging.getLogger("ticketgate.notifications")

NEW_TICKET, FOLLOW_UP, LOCKED_FOLLOW_UP = "NewTicket", "FollowUp", "LockedFollowUp"
REJECTED, UNLOCK_TIMEOUT, PENDING_REMINDER = "FollowUpRejected", "UnlockTimeout", \
    "PendingReminder"
OWNER_ONLY = {LOCKED_FOLLOW_UP, UNLOCK_TIMEOUT, PENDING_REMINDER}

BUILTIN = {
    NEW_TICKET: "New ticket in queue {queue}: {title}",
    FOLLOW_UP: "Follow-up on ticket: {title}",
    LOCKED_FOLLOW_UP: "Follow-up on your locked ticket: {title}",
    REJECTED: "Follow-up rejected (ticket closed): {title}",
    UNLOCK_TIMEOUT: "Ticket unlocked after the unlock timeout: {title}",
    PENDING_REMINDER: "Pending reminder reached: {title}",
    "EscalationResponseTimeNotifyBefore": "First response time almost up: {title}",
    "EscalationResponseTimeStart": "First response time breached: {title}",
    "EscalationUpdateTimeNotifyBefore": "Update time almost up: {title}",
    "EscalationUpdateTimeStart": "Update time breached: {title}",
    "EscalationSolutionTimeNotifyBefore": "Solution time almost up: {title}",
    "EscalationSolutionTimeStart": "Solution time breached: {title}",
}


def recipients(config, ticket, event: str, exclude: str | None = None) -> list:
    wanted = []
    if event in OWNER_ONLY:
        logins = [ticket.owner] if ticket.owner else []
    else:
        queue = config.queues.get(ticket.queue)
        group = queue.group if queue else None
        logins = [a.login for a in config.agents.values()
                  if a.valid and "ro" in config.agent_rights(a, group)]
        logins += [x for x in (ticket.owner, ticket.responsible) if x]
    for login in dict.fromkeys(logins):
        agent = config.agents.get(login)
        if agent is None or not agent.valid or login == exclude or not agent.emails:
            continue
        if agent.notifications.get(event) is False:
            continue
        wanted.append(agent)
    return wanted


def notify(config, session, ticket, event: str, *, article=None, exclude=None,
           detail: str = "") -> int:
    """Queue ``event`` notifications for this ticket; returns how many were queued."""
    agents = recipients(config, ticket, event, exclude)
    sender = system_sender(config, ticket.queue)
    if not agents or sender is None:
        return 0
    numbers = TicketNumbers(config.ticket_number)
    template = config.templates.get(f"notifications/{event}.txt")
    sent, held = [], []
    for agent in agents:
        ok, why = loopguard.allowed(session, config, agent.emails[0], "notification", ticket.id)
        if not ok:
            held.append(f"{agent.login}: {why}")
            continue
        rendered = None
        if template is not None:
            ctx = context(_Numbers(numbers, config), ticket, article, "", "")
            try:
                rendered = template.render(**ctx, agent={"login": agent.login,
                                                         "name": agent.name},
                                           event=event, detail=detail)
            except RenderError as exc:   # the built-in text still tells the agent
                log.error("notification %s for ticket %s: %s", event, ticket.number, exc)
        if rendered is not None:
            subject, body = rendered
        else:
            subject = BUILTIN.get(event, event + ": {title}").format(queue=ticket.queue,
                                                                     title=ticket.title)
            body = (f"Hello {agent.name or agent.login},\n\n{subject}\n\n"
                    f"Ticket: {ticket.number}\nQueue: {ticket.queue}\nState: {ticket.state}\n"
                    f"Priority: {ticket.priority}\nCustomer: {ticket.customer_user or '-'}\n"
                    + (f"\n{detail}\n" if detail else "")
                    + (f"\n--- {article.subject}\n{(article.body or '')[:2000]}\n"
                       if article is not None else ""))
        subject = numbers.add_to_subject(subject, ticket.number)
        with one_mail(session, ticket, article,
                      f"{event} notification to {agent.login}") as attempt:
            msg = message.build(fqdn=config.fqdn, from_addr=sender.address,
                                from_name=sender.name, to=[(agent.emails[0], agent.name)],
                                subject=subject, body=body, auto_submitted="auto-generated",
                                extra_headers={"X-Ticketgate-Event": event})
            auth = config.agent_auth
            reply_to = auth.reply_address(agent.login, ticket.id) if auth is not None else None
            if reply_to:  # a plain "Reply" then carries the agent's proof for this ticket
                msg["Reply-To"] = reply_to
            row = outbound_row(msg, mail_from=sender.address, rcpt_to=[agent.emails[0]],
                               ticket_id=ticket.id, kind="notification")
        if attempt.ok:
            session.add(row)
            sent.append(agent)
    if not sent and not held:
        return 0
    add_history(session, ticket, "SendAgentNotification",
                f"{event} sent to {', '.join(a.login for a in sent) or 'nobody'}"
                + (f"; not sent: {'; '.join(held)}" if held else ""), article)
    return len(sent)


class _Numbers:
    """What autoresponse.context needs from a pipeline, outside the pipeline."""

    def __init__(self, numbers, config):
        self.numbers, self.config = numbers, config


EVENT_FOR_ACTION = {"new_ticket": NEW_TICKET, "new_ticket_closed": NEW_TICKET,
                    "follow_up": FOLLOW_UP, "reject": REJECTED}


def notify_agents(pipeline, session, decision, ticket, article) -> None:
    event = EVENT_FOR_ACTION.get(decision.action)
    if ticket is None or event is None or decision.sender_type == "agent":
        return  # an agent's own mail is not news to the agents
    if any(unit.silences_notifications(decision.flags[unit.name])
           for unit in pipeline.prefilters if unit.name in decision.flags):
        return  # e.g. our own mail coming back (auto_submitted kind loop): never notify on it
    if event == FOLLOW_UP and ticket.locked and ticket.owner:
        event = LOCKED_FOLLOW_UP
    session.flush()
    notify(pipeline.config, session, ticket, event, article=article)
