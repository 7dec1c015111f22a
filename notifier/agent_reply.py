"""An agent's reply goes to the customer, and refused ``#commands`` are answered to the agent.

Runs after the agent's mail is applied (gateway/apply.py has stored the article and applied
the accepted commands), in the same transaction. What the customer gets (docs/agents.md):
the agent's own words (gateway/agents/quoting.py) with the queue's salutation and signature
around them; From = the queue's system address; To = the ticket's customer; the subject with
the ticket hook; In-Reply-To/References to the customer's last mail. A reply that cannot be
built (an address no mail can carry) is skipped alone: the agent's article and
commands stay, and the history says why it was not sent.
"""
from __future__ import annotations

import re
from email.message import Message

from gateway.tickets import add_history
from notifier import loopguard
from notifier.message import addresses, build
from notifier.outbound.queue import one_mail, outbound_row
from notifier.senders import Sender, system_sender


def send_agent_reply(pipeline, session, decision, ticket, article) -> None:
    work = decision.agent_work
    if ticket is None or decision.sender_type != "agent" or work is None:
        return
    agent = pipeline.config.agents[decision.agent]
    if work.send:
        outcome, row = _send(pipeline, session, ticket, article, "agent_reply",
                             f"agent {agent.login}'s reply to {ticket.customer_user}",
                             lambda: customer_message(pipeline, ticket, article, work.text),
                             "no customer address or no system address")
        if row is not None:
            article.flags = {**article.flags, "sent_message_id": row.message_id,
                             "sent": outcome}
        add_history(session, ticket, "SendAnswer",
                    f"agent {agent.login}'s reply to the customer: {outcome}", article)
    if work.refused or work.reply_refused:
        extra = [work.reply_refused] if work.reply_refused else []
        outcome, _row = _send(pipeline, session, ticket, article, "agent_command_answer",
                              f"answer to {agent.login} about refused commands",
                              lambda: agent_answer(pipeline, ticket, article, agent,
                                                   work.verdicts, extra),
                              "no system address")
        add_history(session, ticket, "AgentCommandAnswer",
                    f"answer to {agent.login} about refused commands: {outcome}",
                    article, refused=[v.command.text for v in work.refused])


def _send(pipeline, session, ticket, article, kind: str, what: str, build, missing: str):
    """Build one mail (``build() -> Message | None``) and queue it: (what happened, the row
    or None). A mail that cannot be built, or that the loop guard holds back, is not sent."""
    outcome, row = f"not sent: {missing}", None
    with one_mail(session, ticket, article, what) as attempt:
        message = build()
        if message is not None:
            row, outcome = outgoing_row(message, ticket=ticket, article=article, kind=kind)
    if not attempt.ok:
        return f"not sent: {attempt.why}", None
    if row is None:
        return outcome, None
    outcome = _add(session, pipeline.config, row, ticket, outcome)
    return outcome, row


def _add(session, config, row, ticket, outcome: str) -> str:
    """Queue the row unless the loop guard holds it back (notifier/loopguard.py)."""
    ok, why = loopguard.allowed(session, config, row.rcpt_key, row.kind, ticket.id)
    if not ok:
        return f"not sent: {why}"
    session.add(row)
    return outcome


def _message(config, sender: Sender, to: str, subject: str, body: str,
             in_reply_to: str | None = None, references: list[str] | None = None):
    """Built by the notifier's one mail builder: loop header, and every value that came from
    a mail (the customer's subject) reduced to one line, so no header injection."""
    return build(fqdn=config.fqdn, from_addr=sender.address, from_name=sender.name,
                 to=[(to, "")], subject=subject, body=body, in_reply_to=in_reply_to,
                 references=references)


def customer_message(pipeline, ticket, article, body: str) -> Message | None:
    config = pipeline.config
    sender = system_sender(config, ticket.queue)
    if sender is None or not ticket.customer_user:
        return None
    queue = config.queues.get(ticket.queue)
    parts = [queue.salutation if queue else "", body, queue.signature if queue else ""]
    text = "\n\n".join(p.strip("\n") for p in parts if p and p.strip()) + "\n"
    last_customer = next((a for a in reversed(ticket.articles)
                          if a.sender_type == "customer" and a.message_id), None)
    subject = re.sub(r"^((re|aw|fwd?|wg)\s*:\s*)+", "", article.subject or ticket.title or "",
                     flags=re.IGNORECASE).strip()
    subject = "Re: " + pipeline.numbers.add_to_subject(subject or ticket.title, ticket.number)
    refs = (last_customer.references or "").split() if last_customer else []
    refs = [r.strip("<>") for r in refs] + ([last_customer.message_id] if last_customer else [])
    return _message(config, sender, ticket.customer_user, subject, text,
                    last_customer.message_id if last_customer else None, refs)


def agent_answer(pipeline, ticket, article, agent, verdicts,
                 extra: list[str]) -> Message | None:
    """Tell the agent which of their commands were refused (and why)."""
    config = pipeline.config
    sender = system_sender(config, ticket.queue)
    if sender is None or not agent.emails:
        return None
    lines = [f"Your mail to ticket {ticket.number} was recorded, but not everything in it was "
             f"done:", ""]
    lines += [f"  {v.command.text}: {v.reason}" for v in verdicts if not v.ok]
    lines += [f"  {x}" for x in extra]
    lines += ["", "The other commands went through."]
    sent_from = (article.from_addr or "").lower()
    to = next((e for e in agent.emails if e in sent_from), agent.emails[0])  # never a stranger
    subject = "Re: " + pipeline.numbers.add_to_subject(
        f"commands refused: {article.subject or ticket.title}", ticket.number)
    return _message(config, sender, to, subject, "\n".join(lines) + "\n",
                    article.message_id, [article.message_id] if article.message_id else [])


def outgoing_row(message: Message, *, ticket, article, kind: str):
    """The queue row for this mail (the caller adds it) and what happened, for the history."""
    sender = addresses(message, "From")[0]
    rcpt = addresses(message, "To")   # as written by build: IDN domains in A-labels
    row = outbound_row(message, mail_from=sender, rcpt_to=rcpt, ticket_id=ticket.id,
                       article_id=article.id, kind=kind)
    return row, f"queued to {', '.join(rcpt)} ({message['Message-ID']})"
