"""The decision steps of the pipeline, in order. Each step reads the mail and the decision so
far, may change the decision and always writes a trace line saying why.

Steps never write to the database; ``gateway/apply.py`` acts on the finished decision.
"""
from __future__ import annotations

from sqlalchemy import select

from gateway.agents.identity import check_token, prove_by_token, prove_without_ticket
from gateway.agents.mail_commands import decide_work
from gateway.config import auto_responses
from gateway.config.model import Config
from gateway.followup import FollowUpMatch, _by_message_id, _follow_merges
from gateway.store.models import AppliedAgentMail, Ticket, message_key


def build_steps(config: Config) -> list:
    return [prefilters, sender, postmaster_filters, follow_up, agent_identity,
            queue_for_new_ticket, agent_commands, auto_response]


def merge_settings(target: dict, new: dict) -> None:
    """Later settings win, field by field; dynamic fields are merged, not replaced, so a
    filter's field does not wipe one a trusted X-Ticket-DynamicField-* header set."""
    for key, value in new.items():
        if key == "dynamic_fields" and isinstance(value, dict):
            target["dynamic_fields"] = {**target.get("dynamic_fields", {}), **value}
        else:
            target[key] = value


# -- 1. built-in pre-filters ----------------------------------------------------------------
def prefilters(pipeline, session, decision) -> None:
    config = pipeline.config
    for unit in pipeline.prefilters:
        settings = config.prefilters[unit.name]
        if not settings["enabled"]:
            continue
        verdict = unit.check(decision.mail, decision.envelope, settings, config)
        if verdict.hit:
            decision.flags[verdict.name] = dict(verdict.data, reason=verdict.reason)
            decision.note("prefilter", f"{verdict.name}: {verdict.reason}", **verdict.data)
        else:
            decision.note("prefilter", f"{verdict.name}: no")
        control = verdict.data.get("settings") if verdict.hit else None
        if control:
            merge_settings(decision.settings, control.get("set", {}))
            merge_settings(decision.follow_up_settings, control.get("set_on_follow_up", {}))
        if verdict.data.get("ignore"):
            decision.action = "ignore"
            decision.reason = f"{verdict.name}: {verdict.reason}"


# -- 2. who sent it -------------------------------------------------------------------------
def sender(pipeline, session, decision) -> None:
    """An agent's From is believed only with a proof (gateway/agents/identity.py); the
    reply-address token needs the ticket and is checked in ``agent_identity``."""
    mail, config = decision.mail, pipeline.config
    addr = mail.sender.email if mail.sender else None
    agent = config.agent_by_email(addr) if addr else None
    if agent is None:
        decision.note("sender", f"From {addr or '(none)'}: customer article")
        return
    settings = config.agent_auth   # set by gateway/agents/identity.py when conf/ is loaded
    proof, failures = prove_without_ticket(settings, agent, addr, mail, decision.envelope)
    if proof is not None:
        decision.sender_type, decision.agent = "agent", agent.login
        decision.note("sender", f"From {addr} is agent {agent.login}: proven by {proof.method} "
                                f"({proof.detail})", agent=agent.login, proof=proof.method)
        return
    decision.flags["agent_claim"] = {"agent": agent.login, "address": addr,
                                     "failures": failures}
    pending = " ; reply-address token checked after follow-up detection" \
        if "token" in settings.methods else ""
    decision.note("sender", f"From {addr} claims agent {agent.login}: "
                            f"{'; '.join(failures) or 'no proof method configured'}{pending}",
                  agent=agent.login)


# -- 3. postmaster filters (conf/filters.d) -------------------------------------------------
def postmaster_filters(pipeline, session, decision) -> None:
    engine = pipeline.config.filter_engine
    if engine is None:
        return
    outcome = engine.run(decision.mail)
    for line in outcome.trace:
        decision.note("filter", line.get("message", ""), **{k: v for k, v in line.items()
                                                            if k != "message"})
    merge_settings(decision.settings, outcome.settings)
    merge_settings(decision.follow_up_settings, outcome.follow_up_settings)
    if outcome.ignore:
        decision.action = "ignore"
        decision.reason = f"filter {outcome.ignore}: ignore"


# -- 4. follow-up detection and the queue's follow-up option ---------------------------------
def follow_up(pipeline, session, decision) -> None:
    config = pipeline.config
    if decision.settings.get("follow_up") is False:
        decision.note("follow-up", "a filter forces a new ticket (follow_up: false)")
        return
    match = pipeline.find_follow_up(session, decision.mail)
    if match is None:
        match = _reply_address_ticket(pipeline, session, decision)
    bounce = decision.flags.get("bounce")
    if bounce and match is None and bounce.get("original_message_id"):
        ticket = _by_message_id(session, bounce["original_message_id"],
                                pipeline.message_id_lookups)
        if ticket is not None:
            ticket, chain = _follow_merges(session, ticket)
            match = FollowUpMatch(ticket, "bounced-message", bounce["original_message_id"], chain)
    if match is None:
        decision.note("follow-up", "no ticket number or known Message-ID: new ticket")
        return
    decision.match, decision.ticket = match, match.ticket
    decision.note("follow-up", match.describe(), ticket=match.ticket.number, how=match.how)
    if bounce:
        decision.action = "bounce"
        decision.reason = f"bounce of our mail on ticket {match.ticket.number}"
        return
    ticket = match.ticket
    queue = config.queues.get(ticket.queue)
    option = queue.follow_up if queue else "possible"
    if not config.is_closed(ticket.state):
        decision.action = "follow_up"
        decision.reason = match.describe()
        return
    where = f"queue {ticket.queue!r} follow_up: {option}; ticket state {ticket.state!r} is closed"
    if option == "reject":
        decision.action = "reject"
        decision.reason = f"follow-up rejected ({where})"
    elif option == "new_ticket":
        decision.action = "new_ticket_closed"
        decision.reason = f"new ticket instead of follow-up ({where})"
    else:
        decision.action = "follow_up"
        decision.reason = f"{match.describe()}; reopened ({where})"
    decision.note("follow-up", decision.reason)


def _reply_address_ticket(pipeline, session, decision):
    """The ticket named by a reply address whose token is the claimed agent's."""
    claim = decision.flags.get("agent_claim")
    settings = pipeline.config.agent_auth
    if claim is None or "token" not in settings.methods:
        return None
    mail, envelope = decision.mail, decision.envelope
    addresses = list(envelope.rcpt_to) + [a.email for a in mail.to] + [a.email for a in mail.cc]
    for ticket_id, token, address in settings.reply_tokens(addresses):
        if check_token(settings, claim["agent"], ticket_id, token)[0]:
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None:
                ticket, chain = _follow_merges(session, ticket)
                return FollowUpMatch(ticket, "reply-address", address, chain)
    return None


# -- 4b. the agent's proof that needs the ticket (reply-address token) ----------------------
def agent_identity(pipeline, session, decision) -> None:
    """Finish the proof of an agent's identity now that the ticket is known."""
    claim = decision.flags.get("agent_claim")
    config = pipeline.config
    if claim is not None:
        agent = config.agents[claim["agent"]]
        proof, why = prove_by_token(config.agent_auth, agent, decision.mail,
                                    decision.envelope, decision.ticket,
                                    _merged_ids(session, decision.match))
        if proof is not None:
            del decision.flags["agent_claim"]
            decision.sender_type, decision.agent = "agent", agent.login
            decision.note("identity", f"agent {agent.login}: proven by token ({proof.detail})",
                          agent=agent.login, proof="token")
        else:
            if "token" in config.agent_auth.methods:
                claim["failures"].append(f"token: {why}")
            claim["message"] = (f"claims to be agent {agent.login} but proves nothing: "
                                f"handled as customer")
            why = "; ".join(claim["failures"]) or "no proof method configured"
            decision.note("identity", f"{claim['message']} ({why})", agent=agent.login)
            return
    if decision.sender_type == "agent" and decision.action in ("reject", "new_ticket_closed"):
        decision.note("identity", f"agent reply: the queue's follow-up option "
                                  f"({decision.action}) applies to customers only: follow-up")
        decision.action = "follow_up"
        decision.reason = f"agent reply to {decision.ticket.number}"


def _merged_ids(session, match) -> set[int]:
    """Ids of the merged tickets the follow-up match went through (their tokens stay valid)."""
    if match is None or not match.merged_from:
        return set()
    return set(session.execute(select(Ticket.id).where(Ticket.number.in_(match.merged_from)))
               .scalars())


# -- 5. which queue a new ticket goes to ----------------------------------------------------
def queue_for_new_ticket(pipeline, session, decision) -> None:
    if decision.action not in ("new_ticket", "new_ticket_closed"):
        return
    config, envelope, mail = pipeline.config, decision.envelope, decision.mail
    if decision.settings.get("queue"):
        decision.note("queue", f"queue {decision.settings['queue']!r} set by filter")
        return
    if envelope.queue and envelope.queue in config.queues:
        decision.settings["queue"] = envelope.queue
        decision.note("queue", f"queue {envelope.queue!r} from mail source {envelope.source}")
        return
    recipients = [(r, "envelope recipient") for r in envelope.rcpt_to]
    recipients += [(a.email, "To") for a in mail.to] + [(a.email, "Cc") for a in mail.cc]
    for address, where in recipients:
        sa = config.system_address(address)
        if sa is not None:
            decision.settings["queue"] = sa.queue
            decision.note("queue", f"queue {sa.queue!r}: {where} {address} is its system address")
            return
    decision.settings["queue"] = config.default_queue
    decision.note("queue", f"queue {config.default_queue!r}: default queue (no system address "
                           f"among the recipients)")


# -- 6. an agent's #commands and reply rights (checked here, applied in gateway/apply.py) -----
def agent_commands(pipeline, session, decision) -> None:
    if decision.sender_type != "agent":
        return
    decide_work(pipeline, decision, replay=_replay(session, decision))


def _replay(session, decision) -> str | None:
    """Why this agent mail must not act again: its (Message-ID, agent, ticket) was applied
    before (a copy re-sent by anyone), or it has no Message-ID to tell a copy by."""
    if decision.ticket is None or decision.action != "follow_up":
        return None
    mid = decision.mail.message_id
    if not mid:
        return "no Message-ID: a re-sent copy could not be recognised"
    ids = {decision.ticket.id} | _merged_ids(session, decision.match)
    seen = session.execute(select(AppliedAgentMail).where(
        AppliedAgentMail.message_key == message_key(mid),
        AppliedAgentMail.agent == decision.agent,
        AppliedAgentMail.ticket_id.in_(ids))).scalars().first()
    if seen is None:
        return None
    return f"replay: Message-ID <{mid}> of {decision.agent} was applied on " \
           f"{seen.applied_at:%Y-%m-%d %H:%M} UTC"


# -- 7. would an auto-response be sent? ----------------------------------------------------
def auto_response(pipeline, session, decision) -> None:
    kind = auto_responses.FOR_ACTION.get(decision.action)
    if kind is None:
        return
    reason = None
    for unit in pipeline.prefilters:
        if unit.silences_auto_response and unit.name in decision.flags:
            reason = f"{unit.name}: {decision.flags[unit.name].get('reason', '')}"
            break
    if reason is None and decision.sender_type == "agent":
        reason = "sender is an agent"
    if reason is None and not decision.mail.sender:
        reason = "no sender address"
    if reason is None and decision.mail.sender and \
            pipeline.config.system_address(decision.mail.sender.email):
        reason = "sender is one of our system addresses"
    decision.auto_response = kind
    decision.auto_response_suppressed = reason
    decision.note("auto-response", f"{kind}: suppressed ({reason})" if reason else
                  f"{kind}: to be sent if the queue has a template")
