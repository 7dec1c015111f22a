"""An agent's reply goes to the customer: build the outgoing mail and hand it to the outbox.

What the customer gets (kept simple, see docs/agents.md): the agent's text without the
``#command`` lines and without everything from the first reply marker on ("On ... wrote:",
"-----Original Message-----", "Am ... schrieb", an Outlook "From:" block after a "____" line)
and without a trailing block of ``>`` quoted lines; the queue's salutation and signature around
it; From = the queue's system address; To = the ticket's customer; subject with the ticket
hook. Refused or unknown commands are answered to the agent the same way.

The outbox (``notifier/outbox.py``) is another package's: we call
``notifier.outbox.queue_mail(session, message, mail_from=, rcpt_to=, ticket_id=,
article_id=, kind=)`` in the mail's transaction. If it is not installed the mail is not sent
and the history says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message


MARKERS = [re.compile(p, re.IGNORECASE) for p in (
    r"^On .{0,300}wrote:\s*$", r"^-{2,}\s*Original Message\s*-{2,}\s*$",
    r"^Am .{0,300}schrieb.{0,100}:\s*$", r"^_{10,}\s*$", r"^-{2,}\s*Ursprüngliche Nachricht",
    r"^Le .{0,300}a écrit\s*:\s*$")]


def customer_text(body: str) -> str:
    """The agent's own words: cut at the first reply marker, drop trailing quoted lines."""
    lines = (body or "").splitlines()
    for i, line in enumerate(lines):
        if any(m.match(line.strip()) for m in MARKERS):
            lines = lines[:i]
            break
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    return "\n".join(lines).strip("\n")


@dataclass
class Sender:
    address: str
    name: str


def system_sender(config, queue_name: str) -> Sender | None:
    """The system address mail of this queue comes from (queue's own, else one routed to it,
    else the default queue's, else the first)."""
    queue = config.queues.get(queue_name)
    if queue is not None and queue.system_address:
        sa = config.system_address(queue.system_address)
        return Sender(queue.system_address, sa.name if sa else "")
    for wanted in (queue_name, config.default_queue):
        for sa in config.system_addresses:
            if sa.queue == wanted:
                return Sender(sa.address, sa.name)
    if config.system_addresses:
        sa = config.system_addresses[0]
        return Sender(sa.address, sa.name)
    return None


def _message(config, sender: Sender, to: str, subject: str, body: str,
             in_reply_to: str | None = None, references: list[str] | None = None):
    """Built by the notifier's one mail builder: loop header, and every value that came from
    a mail (the customer's subject) reduced to one line, so no header injection."""
    from notifier.message import build

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


def queue_outgoing(session, message: Message, *, ticket, article, kind: str) -> str:
    """Hand the mail to notifier.outbox in this transaction; returns what happened."""
    try:
        from notifier.outbox import queue_mail
    except ImportError:
        return "not sent: notifier.outbox.queue_mail is not available"
    from notifier.message import addresses

    sender = addresses(message, "From")[0]
    rcpt = addresses(message, "To")
    queue_mail(session, message, mail_from=sender, rcpt_to=rcpt, ticket_id=ticket.id,
               article_id=article.id, kind=kind)
    return f"queued to {', '.join(rcpt)} ({message['Message-ID']})"
