"""OTRS-style ticket ACLs (conf/acl.d/*.yaml): which values an agent's #command may set.

An ACL matches on ticket and user attributes (``properties`` = the ticket as this mail has
changed it so far, ``properties_database`` = the ticket as stored) and then restricts values:
``possible`` (whitelist, replaces), ``possible_add`` (adds back), ``possible_not`` (removes),
for ticket keys (queue, state, priority, type, owner, responsible, dynamic fields) and
``action`` (reply, note, close, state, pending, move, owner, responsible, priority, lock,
field, time). ACLs run in name order; ``stop_after_match`` ends the run. Value modifiers:
``[Not]``, ``[RegExp]``, ``[regexp]`` (case-insensitive), ``[NotRegExp]``, ``[Notregexp]``.
OTRS key names (Properties, PossibleNot, Ticket: {Queue: [...]}, DynamicField_X, Action:
{AgentTicketClose: 0}) and OTRS's YAML export (a list with Name/ConfigMatch/ConfigChange) load
as they are (gateway/agents/acl_config.py loads them). Agents named in agents.yaml
``superusers`` bypass ACLs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


ACTIONS = ("reply", "note", "close", "state", "pending", "move", "owner", "responsible",
           "priority", "lock", "field", "time")
# ---- value patterns -------------------------------------------------------------------------
_MOD = re.compile(r"^\[(Not|RegExp|regexp|NotRegExp|Notregexp)\]")


@dataclass
class Pattern:
    text: str
    negate: bool = False
    regex: re.Pattern | None = None
    value: str = ""

    @classmethod
    def parse(cls, text) -> "Pattern":
        text = "" if text is None else str(text)
        m = _MOD.match(text)
        if not m:
            return cls(text, value=text)
        mod, rest = m.group(1), text[m.end():]
        negate = mod.startswith("Not")
        if mod == "Not":
            return cls(text, True, value=rest)
        flags = re.IGNORECASE if mod.endswith("regexp") else 0
        return cls(text, negate, re.compile(rest, flags), rest)

    def hits(self, value: str) -> bool:
        """Does ``value`` match, ignoring negation?"""
        if self.regex is not None:
            return self.regex.search(value) is not None
        return value == self.value

    def matches(self, values: list[str]) -> bool:
        values = values or [""]
        if self.negate:
            return not any(self.hits(v) for v in values)
        return any(self.hits(v) for v in values)


def matches_any(patterns: list[Pattern], values: list[str]) -> bool:
    return any(p.matches(values) for p in patterns)


@dataclass
class Acl:
    name: str
    file: str = "?"
    line: int = 0
    properties: dict[str, list[Pattern]] = field(default_factory=dict)
    properties_database: dict[str, list[Pattern]] = field(default_factory=dict)
    possible: dict[str, list[Pattern]] = field(default_factory=dict)
    possible_add: dict[str, list[Pattern]] = field(default_factory=dict)
    possible_not: dict[str, list[Pattern]] = field(default_factory=dict)
    stop_after_match: bool = False

    def applies(self, current: dict, database: dict) -> bool:
        return all(matches_any(p, current.get(k, [])) for k, p in self.properties.items()) and \
            all(matches_any(p, database.get(k, [])) for k, p in self.properties_database.items())


@dataclass
class Verdict:
    ok: bool
    reason: str


class AclEngine:
    def __init__(self, acls: list[Acl], superusers=()):
        self.acls = sorted(acls, key=lambda a: a.name)
        self.superusers = set(superusers)

    def check(self, login: str, current: dict, database: dict, key: str,
              value: str) -> Verdict:
        """May agent ``login`` set ``key`` (e.g. 'queue', 'dynamic_field.Branch', 'action')
        to ``value`` on a ticket whose attributes are ``current``/``database``?"""
        if login in self.superusers:
            return Verdict(True, f"{login} is a superuser: ACLs bypassed")
        ok, why = True, "no ACL restricts it"
        for acl in self.acls:
            if not acl.applies(current, database):
                continue
            if key in acl.possible:
                ok = matches_any(acl.possible[key], [value])
                why = f"ACL {acl.name!r} possible" + ("" if ok else " does not list it")
            if key in acl.possible_add and matches_any(acl.possible_add[key], [value]):
                ok, why = True, f"ACL {acl.name!r} possible_add lists it"
            if key in acl.possible_not and matches_any(acl.possible_not[key], [value]):
                ok, why = False, f"ACL {acl.name!r} possible_not lists it"
            if acl.stop_after_match:
                break
        return Verdict(ok, why)


def ticket_attributes(config, ticket, overrides: dict | None = None) -> dict:
    """The matchable attributes of a ticket (each a list of strings)."""
    values = {"queue": ticket.queue, "state": ticket.state, "priority": ticket.priority,
              "type": ticket.type, "owner": ticket.owner, "responsible": ticket.responsible,
              "lock": "lock" if ticket.locked else "unlock",
              "customer_user": ticket.customer_user, "customer_id": ticket.customer_id,
              "title": ticket.title}
    fields = dict(ticket.dynamic_fields or {})
    for k, v in (overrides or {}).items():
        if k.startswith("dynamic_field."):
            fields[k.split(".", 1)[1]] = v
        elif k == "locked":
            values["lock"] = "lock" if v else "unlock"
        else:
            values[k] = v
    values["state_type"] = config.state_type(values["state"] or "")
    out = {k: ["" if v is None else str(v)] for k, v in values.items()}
    for name, v in fields.items():
        out[f"dynamic_field.{name}"] = [str(x) for x in v] if isinstance(v, list) else \
            ["" if v is None else str(v)]
    return out


def user_attributes(config, agent) -> dict:
    out = {"login": [agent.login], "role": list(agent.roles), "group": []}
    for group in config.groups:
        rights = config.agent_rights(agent, group)
        if rights:
            out["group"].append(group)
        for right in rights:
            out.setdefault(f"group_{right}", []).append(group)
    return {f"user.{k}": v for k, v in out.items()}
