"""Explain a Decision for ``ticketgate test-mail``: what each pre-filter said, which postmaster
filter rules matched (condition, header, matched value) or nearly matched, what was set, the
follow-up decision and the result (queue, state, priority, lock, auto-response).

The result is gateway/outcome.py's, the same that processing sets on the ticket.
``explain(decision, config)`` gives a JSON-ready dict; ``render_text`` the same for people.
"""
from __future__ import annotations

from gateway.outcome import outcome_of


def _steps(decision, step: str) -> list:
    return [line for line in decision.trace if line.step == step]


def explain(decision, config) -> dict:
    mail = decision.mail
    prefilters = []
    for line in _steps(decision, "prefilter"):
        name, _, verdict = line.message.partition(": ")
        prefilters.append({"name": name, "hit": verdict != "no", "verdict": verdict,
                           **({"data": line.data} if line.data else {})})
    rules = [{"message": line.message, **line.data} for line in _steps(decision, "filter")]
    result = outcome_of(config, decision)
    return {
        "mail": {"subject": mail.subject, "from": str(mail.sender) if mail.sender else None,
                 "message_id": mail.message_id},
        "prefilters": prefilters,
        "sender": {"type": decision.sender_type, "agent": decision.agent},
        "rules": rules,
        "matched_rules": [r["rule"] for r in rules if r.get("matched") is True],
        "near_misses": [r["rule"] for r in rules if r.get("near_miss")],
        "settings": decision.settings, "follow_up_settings": decision.follow_up_settings,
        "follow_up": [line.message for line in _steps(decision, "follow-up")],
        "action": result.action, "reason": decision.reason, "ticket": result.ticket,
        "queue": result.queue, "state": result.state, "priority": result.priority,
        "lock": result.lock, "notes": list(result.notes),
        "sender_type": decision.sender_type, "agent": decision.agent,
        "auto_response": result.auto_response,
        "auto_response_suppressed": result.auto_response_suppressed,
        "trace": [line.as_dict() for line in decision.trace],
    }


def _fmt_settings(values: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(nothing)"


def render_text(decision, config, *, verbose: bool = False) -> str:
    info = explain(decision, config)
    out = [f"Mail: {info['mail']['subject']!r} from {info['mail']['from'] or '(none)'}"
           + (f" <{info['mail']['message_id']}>" if info["mail"]["message_id"] else "")]
    out.append("\n1. Pre-filters")
    for p in info["prefilters"]:
        out.append(f"   {p['name']:<16} {'HIT ' + p['verdict'] if p['hit'] else 'no'}")
    if not info["prefilters"]:
        out.append("   (none enabled)")
    sender = "agent " + info["agent"] if info["agent"] else "customer"
    out.append(f"   sender: {sender}")

    out.append("\n2. Postmaster filters")
    misses = []
    for r in info["rules"]:
        if "rule" not in r or ("matched" not in r and "timed_out" not in r):
            if "set" in r or "set_on_follow_up" in r:
                label = "sets" if "set" in r else "sets on follow-up"
                out.append(f"          {label}: {_fmt_settings(r.get('set') or r.get('set_on_follow_up'))}")
            elif r.get("rule"):
                out.append(f"          {r['message'].split(': ', 1)[-1]}")
            else:
                out.append(f"   {r['message']}")
            continue
        if r.get("matched"):
            out.append(f"   MATCH  {r['rule']} ({r['where']})")
            for c in r.get("conditions", []):
                out.append(_cond_line(c))
        elif r.get("timed_out"):
            out.append(f"   TIMEOUT {r['rule']} ({r['where']}): condition {r['condition']!r} "
                       f"timed out, rule not applied")
        elif r.get("near_miss"):
            out.append(f"   NEAR   {r['rule']} ({r['where']})")
            for c in r.get("conditions", []):
                out.append(_cond_line(c))
            out.append(f"          failed: {_failed(r['failed'])}")
        else:
            misses.append(r)
    if misses:
        if verbose or len(misses) <= 20:
            for r in misses:
                out.append(f"   no     {r['rule']} ({r['where']}): {_failed(r['failed'])}")
        else:
            out.append(f"   no     {len(misses)} other rules did not match (--verbose lists "
                       f"them): {', '.join(r['rule'] for r in misses[:10])}, ...")

    out.append("\n3. Set")
    out.append(f"   new ticket: {_fmt_settings(info['settings'])}")
    out.append(f"   follow-up:  {_fmt_settings(info['follow_up_settings'])}")

    out.append("\n4. Follow-up")
    for message in info["follow_up"] or ["(not checked: the mail was dropped)"]:
        out.append(f"   {message}")

    out.append("\n5. Result")
    action = info["action"] + (f" -> ticket {info['ticket']}" if info["ticket"] else "")
    out.append(f"   action:        {action}" + (f" ({info['reason']})" if info["reason"] else ""))
    if info["action"] != "ignore":
        out.append(f"   queue:         {info['queue']}")
        out.append(f"   state:         {info['state']}")
        out.append(f"   priority:      {info['priority']}")
        out.append(f"   lock:          {'yes' if info['lock'] else 'no'}")
    auto = info["auto_response"] or "none"
    if info["auto_response_suppressed"]:
        auto += f" (suppressed: {info['auto_response_suppressed']})"
    out.append(f"   auto-response: {auto}")
    for note in info["notes"]:
        out.append(f"   note: {note}")
    agent_lines = [line for line in decision.trace
                   if line.step in ("sender", "identity", "command", "reply")]
    if agent_lines:
        out.append("\n6. Agent")
        out += [f"   {line.step:<9} {line.message}" for line in agent_lines]
    return "\n".join(out)


def _cond_line(c: dict) -> str:
    if c.get("negated"):
        return f"          {c['condition']:<18} holds (no match for /{c['pattern']}/)"
    return (f"          {c['condition']:<18} {c.get('header', ''):<10} {c.get('value', '')!r}"
            f"  matched {c.get('matched', '')!r}")


def _failed(failed: dict) -> str:
    if failed.get("negated"):
        return (f"{failed['condition']}: {failed.get('header')} {failed.get('value')!r} "
                f"matches /{failed['pattern']}/")
    if failed.get("checked") == "absent":
        return f"{failed['condition']}: not in this mail"
    return f"{failed['condition']} does not match /{failed['pattern']}/"
