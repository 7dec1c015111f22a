"""``#commands`` in an agent's mail: parsing, the right each one needs (with and without it),
refusals answered to the agent while the rest goes through, and the trace test-mail shows."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from gateway.agents.mail_commands import BY_NAME, check_all, parse
from gateway.config.model import Agent
from tests.mails import make_mail
from tests.test_agent_identity import (agent_app, agent_mail, customer_ticket,  # noqa: F401
                                       ingest_with, last_in, load_ticket, outbox,
                                       reply_address)


# ---- parsing ------------------------------------------------------------------------------------
def test_commands_are_the_lines_at_the_top():
    body = "\n#state closed successful\n#Queue Hardware::Printer\n\n#time 15\nHello,\n#not a " \
           "command any more\n"
    commands, rest = parse(body)
    assert [(c.name, c.arg) for c in commands] == [("state", "closed successful"),
                                                   ("queue", "Hardware::Printer"),
                                                   ("time", "15")]
    assert rest == "Hello,\n#not a command any more"


def test_text_starting_with_hash_number_is_not_a_command():
    commands, rest = parse("#1 priority for us is uptime\nthanks")
    assert commands == [] and rest.startswith("#1 priority")


# ---- each command with and without its right ------------------------------------------------------
def fake_ticket(**kw):
    values = dict(id=1, number="1", queue="Unassigned", state="open", priority="3 normal",
                  type=None, owner=None, responsible=None, locked=False, customer_user="a@b",
                  customer_id=None, title="t", dynamic_fields={}, pending_until=None)
    values.update(kw)
    return SimpleNamespace(**values)


@pytest.fixture
def config(agent_app):
    config = agent_app.config
    config.direct_group_rights = True
    return config


def agent_with(rights_tier1, rights_tier2=("move_into",)):
    return Agent("pat", "Pat", ["pat@example.com"], [],
                 {"Tier 1": frozenset(rights_tier1), "Tier 2": frozenset(rights_tier2)})


FUTURE = f"{datetime.now(timezone.utc).year + 2}-12-01 09:00"
CASES = [("#state closed successful", "rw"), ("#queue Hardware", "rw"),
         ("#owner tmoore", "owner"), ("#responsible tmoore", "owner"),
         ("#priority 4 high", "priority"), ("#lock", "rw"), ("#unlock", "rw"),
         (f"#pending {FUTURE}", "rw"), ("#note", "note"), ("#time 15", "note"),
         ("#field Branch=101", "rw")]


def test_every_command_has_a_case():
    assert {c.split()[0][1:] for c, _ in CASES} == set(BY_NAME)
    assert {c.split()[0][1:]: right for c, right in CASES} == \
        {name: row.right for name, row in BY_NAME.items()}


@pytest.mark.parametrize("line, right", CASES)
def test_command_with_its_right_is_accepted(config, line, right):
    commands, _ = parse(line)
    [verdict] = check_all(config, agent_with({"ro", right}), fake_ticket(), commands)
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize("line, right", CASES)
def test_command_without_its_right_is_refused(config, line, right):
    others = {"ro", "move_into", "create", "note", "owner", "priority"} - {right}
    commands, _ = parse(line)
    [verdict] = check_all(config, agent_with(others), fake_ticket(), commands)
    assert not verdict.ok
    assert f"lacks the {right!r} right on group 'Tier 1'" in verdict.reason


def test_queue_needs_move_into_on_the_target(config):
    commands, _ = parse("#queue Hardware")
    [verdict] = check_all(config, agent_with({"rw"}, ()), fake_ticket(), commands)
    assert not verdict.ok and "'move_into' right on group 'Tier 2'" in verdict.reason


def test_new_owner_must_be_able_to_own(config):
    ticket = fake_ticket(queue="VIP")   # Manager group: only mlee has rights there
    commands, _ = parse("#owner tmoore\n#owner mlee")
    manager = Agent("boss", "Boss", ["b@example.com"], [], {"Manager": frozenset({"rw"})})
    refused, accepted = check_all(config, manager, ticket, commands)
    assert not refused.ok and "tmoore has no 'owner' right" in refused.reason
    assert accepted.ok and accepted.changes == [("owner", "mlee")]


@pytest.mark.parametrize("line, reason", [
    ("#state nirvana", "unknown state 'nirvana'"),
    ("#state merged", "cannot be set by mail"),
    ("#state pending reminder", "needs a time"),
    ("#queue Nowhere", "unknown queue 'Nowhere'"),
    ("#priority 9", "unknown priority '9'"),
    ("#owner ghost", "no valid agent 'ghost'"),
    ("#pending 2001-01-01 10:00", "in the past"),
    ("#pending tomorrow", "#pending needs a date"),
    ("#time -3", "minutes must be between"),
    ("#field =x", "#field needs NAME=VALUE"),
    ("#frobnicate now", "unknown command #frobnicate"),
])
def test_bad_arguments_are_refused_with_a_reason(config, line, reason):
    commands, _ = parse(line)
    [verdict] = check_all(config, agent_with({"rw"}), fake_ticket(), commands)
    assert not verdict.ok and reason in verdict.reason


def test_priority_accepts_number_name_or_both(config):
    for arg in ("4", "high", "4 high", "4 HIGH"):
        [v] = check_all(config, agent_with({"rw"}), fake_ticket(), parse(f"#priority {arg}")[0])
        assert v.changes == [("priority", "4 high")]


def test_pending_is_in_the_queue_calendar_time_zone(config):
    [v] = check_all(config, agent_with({"rw"}), fake_ticket(),
                    parse(f"#pending {FUTURE} pending auto close+")[0])
    changes = dict(v.changes)
    assert changes["state"] == "pending auto close+"
    tz = config.calendars["default"].tz
    local = changes["pending_until"].astimezone(tz)
    assert (local.month, local.day, local.hour, local.minute) == (12, 1, 9, 0)


# ---- through the pipeline ------------------------------------------------------------------------
def test_commands_apply_and_refusals_are_answered(agent_app, outbox):
    t = customer_ticket(agent_app)
    body = ("#priority 5 very high\n#owner tmoore\n#queue VIP\n#frobnicate\n#field Branch=101\n"
            "#lock\n\nHello Alice, we are on it.")
    ingest_with(agent_app, agent_mail(t, body=body, to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, t.number)
    assert (t.priority, t.owner, t.locked, t.queue) == ("5 very high", "tmoore", True,
                                                         "Unassigned")
    assert t.dynamic_fields == {"Branch": "101"}
    assert {h.type for h in t.history} >= {"PriorityUpdate", "OwnerUpdate", "Lock",
                                           "TicketDynamicFieldUpdate", "AgentCommandRefused"}
    refused = [h.message for h in t.history if h.type == "AgentCommandRefused"]
    assert refused == ["#queue VIP: refused (tmoore lacks the 'move_into' right on group "
                       "'Manager' of queue 'VIP')",
                       "#frobnicate: refused (unknown command #frobnicate (commands: #state, "
                       "#queue, #owner, #responsible, #priority, #lock, #unlock, #pending, "
                       "#note, #time, #field))"]
    [answer] = outbox.of_kind("agent_command_answer")
    assert answer["rcpt_to"] == ["tom.moore@example.com"]
    text = answer["message"].get_content()
    assert "#queue VIP: tmoore lacks the 'move_into' right" in text
    assert "#frobnicate: unknown command" in text
    assert [q["rcpt_to"] for q in outbox.of_kind("agent_reply")] == [["alice@customer.test"]]
    assert "#priority" not in outbox.of_kind("agent_reply")[0]["message"].get_content()


def test_pending_sets_the_time_and_a_later_state_clears_it(agent_app, outbox):
    t = customer_ticket(agent_app)
    to = reply_address(agent_app, "tmoore", t.id)
    ingest_with(agent_app, agent_mail(t, body=f"#pending {FUTURE}\nWaiting.", to=to))
    t = load_ticket(agent_app, t.number)
    assert t.state == "pending reminder" and t.pending_until is not None
    assert t.update_due is None and t.solution_due is None   # pending suspends escalation
    ingest_with(agent_app, agent_mail(t, body="#state open\nPart arrived.", to=to))
    t = load_ticket(agent_app, t.number)
    assert t.state == "open" and t.pending_until is None and t.solution_due is not None


def test_close_and_move(agent_app, outbox):
    t = customer_ticket(agent_app)
    ingest_with(agent_app, agent_mail(
        t, body="#queue Network Outage\n#state closed successful\n#time 5\nDone.",
        frm="Nia Smith <nia.smith@example.com>", to=reply_address(agent_app, "nsmith", t.id)))
    t = load_ticket(agent_app, t.number)
    assert (t.queue, t.state) == ("Network Outage", "closed successful")
    assert t.first_response_due is None and t.solution_due is None   # closed: no deadlines
    assert last_in(t).flags["time_units"] == 5


def test_agent_reply_to_closed_ticket_in_reject_queue_is_not_rejected(agent_app, outbox):
    out = ingest_with(agent_app, make_mail(to="purchasing@example.com", subject="Buy servers"))
    t = load_ticket(agent_app, out.ticket_number)
    assert t.queue == "Large Hardware Purchases"
    ingest_with(agent_app, agent_mail(t, body="#state closed successful\nOrdered.",
                                      frm="Max Lee <max.lee@example.com>",
                                      to=reply_address(agent_app, "mlee", t.id)))
    again = ingest_with(agent_app, agent_mail(t, body="Delivery is on Monday.",
                                              frm="Max Lee <max.lee@example.com>",
                                              to=reply_address(agent_app, "mlee", t.id)))
    assert again.action == "follow_up"
    t = load_ticket(agent_app, t.number)
    assert t.state == "closed successful"      # an agent's mail changes state only by command
    assert len(outbox.of_kind("agent_reply")) == 2


def test_commands_of_an_unproven_agent_do_nothing(agent_app, outbox):
    t = customer_ticket(agent_app)
    ingest_with(agent_app, agent_mail(t, body="#state closed successful\n#priority 5\nbye"))
    t = load_ticket(agent_app, t.number)
    assert (t.state, t.priority) == ("new", "3 normal")
    assert outbox.queued == []


def test_test_mail_trace_shows_identity_and_each_verdict(agent_app, outbox):
    from filters.explain import explain
    from gateway.intake import Envelope
    from gateway.mail import parse as parse_mail

    t = customer_ticket(agent_app)
    raw = agent_mail(t, body="#priority 4\n#queue VIP\nhi",
                     to=reply_address(agent_app, "tmoore", t.id))
    with agent_app.store.read_session() as session:
        decision = agent_app.pipeline.decide(session, parse_mail(raw), Envelope())
        info = explain(decision, agent_app.config)
    messages = [(line["step"], line["message"]) for line in info["trace"]]
    assert ("identity", f"agent tmoore: proven by token (reply address "
                        f"{reply_address(agent_app, 'tmoore', t.id)} carries tmoore's token "
                        f"for this ticket)") in messages
    assert ("command", "#priority 4: accepted ('priority' right on group 'Tier 1')") in messages
    assert any(step == "command" and m.startswith("#queue VIP: refused") for step, m in messages)
    assert ("reply", "to the customer: to be sent") in messages
    assert load_ticket(agent_app, t.number).priority == "3 normal"   # dry run wrote nothing


# ---- issue 11 point 10: a responder's mail from an agent is never the agent's reply -----------
@pytest.mark.parametrize("marks", [
    {"headers": {"Auto-Submitted": "auto-replied"}},
    {"headers": {"X-Autoreply": "yes"}},
    {"subject": "Automatic reply: Re: [Ticket#{number}] Need help"},
])
def test_auto_submitted_agent_mail_is_an_internal_note_and_runs_no_commands(agent_app, outbox,
                                                                            marks):
    t = customer_ticket(agent_app)
    kw = dict(marks)
    if "subject" in kw:
        kw["subject"] = kw["subject"].format(number=t.number)
    raw = agent_mail(t, body="#state closed successful\n#priority 5 very high\n\n"
                             "I am out of the office until Monday.",
                     to=reply_address(agent_app, "tmoore", t.id), **kw)
    out = ingest_with(agent_app, raw)
    t = load_ticket(agent_app, out.ticket_number)
    article = last_in(t)
    assert article.sender_type == "agent" and article.internal
    assert t.state == "new" and t.priority == "3 normal"     # no command ran
    assert outbox.queued == []          # no reply to the customer, no answer to the agent
    assert any(h.type == "AddNote" and "auto-submitted" in h.message for h in t.history)
