"""Auto-responses (per queue, as OTRS): auto reply to a new ticket, auto reject of a rejected
follow-up, auto follow up, auto reply/new ticket. Runs after a mail is applied, in the same
transaction: the answer is an outbound queue row (its Message-ID is known to follow-up
detection, so a reply to it joins the ticket) and a history line with its subject. An answer
that cannot be built is skipped alone, with a history line saying why."""
from __future__ import annotations

from gateway.tickets import add_history
from notifier import loopguard, message
from notifier.senders import system_sender
from notifier.templates import RenderError
from notifier.outbound.queue import one_mail, outbound_row, outgoing_article


def context(pipeline, ticket, article, customer_email, customer_name) -> dict:
    queue = pipeline.config.queues.get(ticket.queue)
    return {
        "ticket": {"number": ticket.number, "title": ticket.title, "queue": ticket.queue,
                   "state": ticket.state, "priority": ticket.priority, "owner": ticket.owner,
                   "hook": pipeline.numbers.subject_hook(ticket.number)},
        "article": {"subject": article.subject, "body": article.body,
                    "from": article.from_addr, "to": article.to_addr} if article else {},
        "customer": {"email": customer_email, "name": customer_name},
        "queue": {"name": ticket.queue, "salutation": queue.salutation if queue else "",
                  "signature": queue.signature if queue else ""},
        "config": {"fqdn": pipeline.config.fqdn},
    }


def wrap(queue, body: str) -> str:
    parts = [queue.salutation if queue else "", body, queue.signature if queue else ""]
    return "\n\n".join(p.strip("\n") for p in parts if p and p.strip()) + "\n"


def recipient(mail):
    """Where an automatic answer goes: Reply-To, else From (RFC 3834 3.1.5 prefers the
    envelope sender for errors; for answers the author's reply address is right)."""
    for addr in (mail.reply_to[:1] or mail.from_[:1]):
        return addr
    return None


def send_auto_response(pipeline, session, decision, ticket, article) -> None:
    kind = decision.auto_response
    if ticket is None or kind is None or decision.auto_response_suppressed:
        return
    config = pipeline.config
    queue = config.queues.get(ticket.queue)
    name = queue.auto_responses.get(kind) if queue else None
    if not name:
        add_history(session, ticket, "AutoResponse", f"{kind}: none configured for queue "
                                                     f"{ticket.queue!r}", article)
        return
    template = config.templates.get(name)
    to = recipient(decision.mail)
    if template is None or to is None:
        return
    ok, why = loopguard.allowed(session, config, to.email)
    if not ok:
        add_history(session, ticket, "AutoResponse", f"{kind} not sent: {why}", article)
        return
    sender = system_sender(config, ticket.queue)
    if sender is None:
        add_history(session, ticket, "AutoResponse", f"{kind} not sent: no system address",
                    article)
        return
    try:
        subject, body = template.render(**context(pipeline, ticket, article, to.email, to.name))
    except RenderError as exc:
        add_history(session, ticket, "AutoResponse", f"{kind} not sent: {exc}", article)
        return
    subject = pipeline.numbers.add_to_subject(subject, ticket.number)
    mail = decision.mail
    with one_mail(session, ticket, article, f"{kind} ({name}) to {to.email}") as attempt:
        msg = message.build(fqdn=config.fqdn, from_addr=sender.address,
                            from_name=sender.name, to=[(to.email, to.name)], subject=subject,
                            body=wrap(queue, body), in_reply_to=mail.message_id,
                            references=list(mail.references) + ([mail.message_id]
                                                                if mail.message_id else []),
                            auto_submitted=True)
        row = outbound_row(msg, mail_from=sender.address, rcpt_to=[to.email],
                           ticket_id=ticket.id, kind=kind)
    if not attempt.ok:
        return
    if config.outbound["store_articles"]:
        sent = outgoing_article(session, ticket, msg, sender_type="system",
                                flags={"auto_response": kind, "template": name})
        session.flush()
        row.article_id = sent.id
    session.add(row)
    add_history(session, ticket, "SendAutoResponse",
                f"{kind} ({name}) queued to {to.email}: {subject}", article,
                message_id=row.message_id)
