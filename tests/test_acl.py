"""Ticket ACLs (conf/acl.d): the OTRS admin manual's examples reproduced, modifiers, order,
stop_after_match, superusers, OTRS key names and export format, config errors."""
from __future__ import annotations

import textwrap

import pytest

from gateway.agents.acl import Pattern
from gateway.agents.mail_commands import check_all, parse
from gateway.app import load_config
from gateway.config import ConfigError
from gateway.config.model import Agent
from tests.test_agent_commands import fake_ticket
from tests.test_agent_identity import (add_agent_auth, agent_mail, ingest_with,  # noqa: F401
                                       load_ticket, outbox, reply_address)

QUEUES = """
  Raw: {group: Tier 1}
  Alert: {group: Tier 1}
  Junk: {group: Tier 1}
  HW: {group: Tier 1}
  "HW::Desktop": {group: Tier 1}
  "HW::Server": {group: Tier 1}
"""

# The examples of the OTRS admin manual ("Access Control Lists (ACLs)", Perl
# $Self->{TicketAcl} examples 100-Example-ACL ... and the ACL reference), written in YAML with
# OTRS's own key names. Services do not exist here: the regex example restricts queues.
OTRS_EXAMPLES = """
# ticket acl: only priority 5 tickets of Raw, and they may only go to Alert
100-Example-ACL:
  Properties:
    Ticket:
      Queue: [Raw]
      Priority: [5 very high]
  Possible:
    Ticket:
      Queue: [Alert]

# the same on the values stored in the database (changes in this mail do not count)
101-Example-ACL:
  PropertiesDatabase:
    Ticket:
      Queue: [Junk]
      Priority: [5 very high]
  Possible:
    Ticket:
      Queue: [Alert]

# disable closing tickets in Raw (states whitelisted, AgentTicketClose => 0)
102-Second-Example-ACL:
  Properties:
    Ticket:
      Queue: [Raw]
  Possible:
    Ticket:
      State: [new, open, pending reminder]
    Action:
      AgentTicketBounce: 1
      AgentTicketClose: 0
      AgentTicketCompose: 1
      AgentTicketCustomer: 1
      AgentTicketForward: 1
      AgentTicketFreeText: 1
      AgentTicketHistory: 1
      AgentTicketLink: 1
      AgentTicketLock: 1
      AgentTicketMerge: 1

# remove the state 'closed successful' for every ticket (no properties: always matches)
103-Third-ACL:
  Properties: {}
  PossibleNot:
    Ticket:
      State: [closed successful]

# ... except for agents of the Manager role
103-Third-ACL-Managers:
  Properties:
    User:
      Role: [Manager]
  PossibleAdd:
    Ticket:
      State: [closed successful]

# regular expressions: tickets in HW* queues stay in HW* queues
104-RegExp-ACL:
  Properties:
    Ticket:
      Queue: ["[RegExp]^HW"]
  Possible:
    Ticket:
      Queue: ["[RegExp]^HW"]
"""


def make_conf(conf_dir, acls: str, superusers="[]"):
    with open(conf_dir / "queues.yaml", "a") as f:
        f.write(QUEUES)
    agents = (conf_dir / "agents.yaml").read_text()
    (conf_dir / "agents.yaml").write_text(agents.replace("superusers: []",
                                                         f"superusers: {superusers}"))
    (conf_dir / "acl.d" / "10-examples.yaml").unlink()    # the shipped examples: tested below
    (conf_dir / "acl.d" / "50-test.yaml").write_text(textwrap.dedent(acls))
    return conf_dir


@pytest.fixture
def otrs(conf_dir):
    import gateway.agents  # noqa: F401 - registers the acl.d loader

    return load_config(make_conf(conf_dir, OTRS_EXAMPLES, "[mlee]"))


TIER1 = Agent("pat", "Pat", ["pat@example.com"], ["Tier 1"], {})


def verdicts(config, text, agent=TIER1, **ticket):
    return check_all(config, agent, fake_ticket(**ticket), parse(text)[0], config.acl)


def ok(config, text, agent=TIER1, **ticket) -> list[bool]:
    return [v.ok for v in verdicts(config, text, agent, **ticket)]


# ---- the manual's examples --------------------------------------------------------------------
def test_100_priority_5_in_raw_may_only_move_to_alert(otrs):
    assert ok(otrs, "#queue Junk", queue="Raw", priority="5 very high") == [False]
    assert ok(otrs, "#queue Alert", queue="Raw", priority="5 very high") == [True]
    assert ok(otrs, "#queue Junk", queue="Raw", priority="3 normal") == [True]
    [v] = verdicts(otrs, "#queue Junk", queue="Raw", priority="5 very high")
    assert v.reason == ("queue 'Junk' not allowed: ACL '100-Example-ACL' possible does not "
                        "list it")


def test_100_properties_see_the_changes_made_earlier_in_the_mail(otrs):
    # like a form: set priority 5 first, then the move is restricted
    assert ok(otrs, "#priority 5\n#queue Junk", queue="Raw") == [True, False]
    assert ok(otrs, "#queue Junk\n#priority 5", queue="Raw") == [True, True]


def test_101_properties_database_see_only_stored_values(otrs):
    assert ok(otrs, "#priority 5\n#queue Raw", queue="Junk") == [True, True]
    assert ok(otrs, "#queue Raw", queue="Junk", priority="5 very high") == [False]


def test_102_close_prevented_in_raw(otrs):
    assert ok(otrs, "#state closed unsuccessful", queue="Raw") == [False]
    [v] = verdicts(otrs, "#state closed unsuccessful", queue="Raw")
    assert "action 'close' not allowed: ACL '102-Second-Example-ACL' possible_not" in v.reason
    assert ok(otrs, "#state open", queue="Raw") == [True]
    assert ok(otrs, "#pending 2099-01-01 10:00", queue="Raw") == [True]
    assert ok(otrs, "#state closed unsuccessful", queue="Junk") == [True]


def test_103_closed_successful_removed_except_for_managers(otrs):
    assert ok(otrs, "#state closed successful", queue="Junk") == [False]
    assert ok(otrs, "#state closed unsuccessful", queue="Junk") == [True]
    manager = Agent("boss", "Boss", ["b@example.com"], ["Manager"], {})
    assert ok(otrs, "#state closed successful", manager, queue="Junk") == [True]


def test_104_regexp_hw_tickets_stay_in_hw(otrs):
    assert ok(otrs, "#queue HW::Server", queue="HW::Desktop") == [True]
    assert ok(otrs, "#queue Junk", queue="HW::Desktop") == [False]
    assert ok(otrs, "#queue Junk", queue="Alert") == [True]


def test_superuser_named_in_agents_yaml_bypasses_acls(otrs):
    mlee = otrs.agents["mlee"]
    [v] = verdicts(otrs, "#queue Junk", mlee, queue="Raw", priority="5 very high")
    assert v.ok and "superuser" not in v.reason          # the rights check passed...
    assert otrs.acl.check("mlee", {}, {}, "queue", "Junk").reason == \
        "mlee is a superuser: ACLs bypassed"
    assert ok(otrs, "#queue Junk", otrs.agents["nsmith"], queue="Raw",
              priority="5 very high") == [False]


# ---- modifiers, order, stop_after_match ------------------------------------------------------------
@pytest.mark.parametrize("pattern, value, hit", [
    ("2 low", "2 low", True), ("2 low", "2 LOW", False),
    ("[Not]2 low", "2 low", False), ("[Not]2 low", "3 normal", True),
    ("[RegExp]low", "1 very low", True), ("[RegExp]low", "3 normal", False),
    ("[RegExp]LOW", "1 very low", False), ("[regexp]LOW", "1 very low", True),
    ("[NotRegExp]low", "2 low", False), ("[NotRegExp]low", "4 high", True),
    ("[Notregexp]LOW", "2 low", False), ("[Notregexp]LOW", "4 high", True),
])
def test_modifiers(pattern, value, hit):
    assert Pattern.parse(pattern).matches([value]) is hit


def test_negation_on_a_list_of_values_means_none_of_them():
    assert Pattern.parse("[Not]Manager").matches(["Tier 1", "Manager"]) is False
    assert Pattern.parse("Manager").matches(["Tier 1", "Manager"]) is True


ORDER = """
{first}:
  properties: {{ticket: {{queue: [Raw]}}}}
  possible: {{ticket: {{queue: [Alert]}}}}
{second}:
  properties: {{ticket: {{queue: [Raw]}}}}
  possible_add: {{ticket: {{queue: [Junk]}}}}
"""


@pytest.mark.parametrize("first, second, junk_allowed", [("200-only-alert", "300-add-junk", True),
                                                         ("300-only-alert", "200-add-junk", False)])
def test_acls_run_in_name_order(conf_dir, first, second, junk_allowed):
    import gateway.agents  # noqa: F401

    config = load_config(make_conf(conf_dir, ORDER.format(first=first, second=second)))
    assert ok(config, "#queue Junk", queue="Raw") == [junk_allowed]
    assert ok(config, "#queue Alert", queue="Raw") == [True]


def test_stop_after_match(conf_dir):
    import gateway.agents  # noqa: F401

    config = load_config(make_conf(conf_dir, """
        200-first:
          properties: {ticket: {queue: [Raw]}}
          possible: {ticket: {priority: ["[RegExp]^[345] "]}}
          stop_after_match: yes
        300-never-reached:
          properties: {ticket: {queue: [Raw]}}
          possible_not: {ticket: {priority: [4 high]}}
        """))
    assert ok(config, "#priority 4\n#priority 1", queue="Raw") == [True, False]
    assert ok(config, "#priority 4", queue="Junk") == [True]


def test_user_group_rights_and_dynamic_fields(conf_dir):
    import gateway.agents  # noqa: F401

    config = load_config(make_conf(conf_dir, """
        200-branch-101-fields:
          properties:
            dynamic_field: {DynamicField_Branch: ["101"]}
            user: {Group_rw: ["[Not]Manager"]}
          possible:
            ticket: {DynamicField_Region: [North, South]}
          possible_not:
            action: [owner]
        """))
    assert ok(config, "#field Region=East", queue="Junk", dynamic_fields={"Branch": "101"}) \
        == [False]
    assert ok(config, "#field Region=North\n#owner tmoore", queue="Junk",
              dynamic_fields={"Branch": "101"}) == [True, False]
    assert ok(config, "#field Region=East", queue="Junk", dynamic_fields={"Branch": "7"}) \
        == [True]
    # a field set earlier in the same mail counts for properties
    assert ok(config, "#field Branch=101\n#field Region=East", queue="Junk") == [True, False]
    manager = Agent("boss", "Boss", ["b@example.com"], ["Manager"], {})
    assert ok(config, "#field Region=East", manager, queue="Junk",
              dynamic_fields={"Branch": "101"}) == [True]


def test_otrs_export_format_imports_as_it_is(conf_dir):
    import gateway.agents  # noqa: F401

    config = load_config(make_conf(conf_dir, """
        - Name: 100-Example-ACL
          Comment: from the OTRS ACL export
          StopAfterMatch: 0
          ValidID: 1
          ConfigMatch:
            Properties:
              Ticket:
                Queue: [Raw]
                Priority: [5 very high]
          ConfigChange:
            Possible:
              Ticket:
                Queue: [Alert]
        - Name: 999-invalid
          ValidID: 2
          ConfigChange:
            PossibleNot: {Ticket: {Queue: [Alert]}}
        """))
    assert [a.name for a in config.acl.acls] == ["100-Example-ACL"]
    assert ok(config, "#queue Junk", queue="Raw", priority="5 very high") == [False]


# ---- configuration errors --------------------------------------------------------------------------
def test_acl_config_errors_name_file_and_line(conf_dir):
    import gateway.agents  # noqa: F401

    make_conf(conf_dir, """
        200-bad:
          properties:
            ticket: {queue: [Nowhere], colour: [red]}
          possible:
            ticket: {state: ["[RegExp](unclosed"]}
          possible_not:
            action: [teleport]
          frobnicate: yes
        """)
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    text = str(exc.value)
    assert "50-test.yaml:4: ACL '200-bad': unknown queue 'Nowhere'" in text
    assert "50-test.yaml:4: ACL '200-bad': properties.ticket: unknown key 'colour'" in text
    assert "bad regular expression" in text
    assert "unknown action 'teleport'" in text
    assert "50-test.yaml:9: ACL '200-bad': unknown key 'frobnicate'" in text


def test_shipped_examples_load_and_work(app):
    names = [a.name for a in app.config.acl.acls]
    assert names == sorted(names) and "110-qa-no-close" in names
    tier2 = app.config.agents["tmoore"]
    mlee = app.config.agents["mlee"]
    assert ok(app.config, "#state closed successful", mlee, queue="QA") == [False]
    assert ok(app.config, "#state closed unsuccessful", tier2, queue="Unassigned") == [False]
    assert ok(app.config, "#state closed unsuccessful", mlee, queue="Unassigned") == [True]
    assert ok(app.config, "#queue Unassigned", tier2, queue="Hardware::Printer") == [False]
    assert ok(app.config, "#queue Hardware", tier2, queue="Hardware::Printer") == [True]


# ---- through a mail --------------------------------------------------------------------------------
def test_acl_refusal_in_a_mail_is_answered_and_the_rest_applies(conf_dir, make_app, outbox):
    make_conf(conf_dir, OTRS_EXAMPLES)
    add_agent_auth(conf_dir)
    app = make_app()
    from tests.mails import make_mail

    out = ingest_with(app, make_mail(subject="raw one"), queue="Raw")
    t = load_ticket(app, out.ticket_number)
    assert t.queue == "Raw"
    ingest_with(app, agent_mail(t, body="#priority 5\n#queue Junk\n#state closed successful\n"
                                        "#state open\nWorking on it.",
                                frm="Jane Doe <jane.doe@example.com>",
                                to=reply_address(app, "jdoe", t.id)))
    t = load_ticket(app, t.number)
    assert (t.priority, t.queue, t.state) == ("5 very high", "Raw", "open")
    [answer] = outbox.of_kind("agent_command_answer")
    text = answer["message"].get_content()
    assert "#queue Junk: queue 'Junk' not allowed: ACL '100-Example-ACL'" in text
    assert "#state closed successful:" in text
    assert len(outbox.of_kind("agent_reply")) == 1
