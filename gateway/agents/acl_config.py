"""Loading conf/acl.d/*.yaml into the ACL engine (gateway/agents/acl.py): OTRS key spellings
(Properties, PossibleNot, Ticket: {Queue: [...]}, DynamicField_X, Action: {AgentTicketClose:
0}) and OTRS's YAML export are read as they are; every problem names file and line."""
from __future__ import annotations

import re

from gateway.agents.acl import _MOD, ACTIONS, Acl, AclEngine, Pattern
from gateway.config.schema import Key
from gateway.config.section import ConfigSection
from gateway.config.yamlload import ConfigError, LineDict, LineList, Problem, load_yaml

OTRS_ACTIONS = {"agentticketcompose": "reply", "agentticketanswer": "reply",
                "agentticketnote": "note", "agentticketclose": "close",
                "agentticketpending": "pending", "agentticketmove": "move",
                "agentticketowner": "owner", "agentticketresponsible": "responsible",
                "agentticketpriority": "priority", "agentticketlock": "lock",
                "agentticketfreetext": "field"}
TICKET_KEYS = {"queue": "queue", "state": "state", "statetype": "state_type",
               "priority": "priority", "type": "type", "owner": "owner", "newowner": "owner",
               "responsible": "responsible", "newresponsible": "responsible", "lock": "lock",
               "customeruser": "customer_user", "customeruserid": "customer_user",
               "customerid": "customer_id", "title": "title"}
POSSIBLE_TICKET = ("queue", "state", "priority", "type", "owner", "responsible")
USER_KEYS = {"userlogin": "login", "login": "login", "role": "role", "roles": "role",
             "group": "group", "groups": "group"}
# Section-style properties of OTRS: Queue: {Name: [...]}, State: {TypeName: [...]}, ...
SECTIONS = {"queue": {"name": "queue"}, "priority": {"name": "priority"},
            "state": {"name": "state", "typename": "state_type"}, "type": {"name": "type"},
            "owner": {"userlogin": "owner"}, "responsible": {"userlogin": "responsible"}}
TOP_MATCH = {"properties": "properties", "propertiesdatabase": "properties_database"}
TOP_CHANGE = {"possible": "possible", "possibleadd": "possible_add",
              "possiblenot": "possible_not"}
TOP_OTHER = {"stopaftermatch": "stop_after_match", "comment": "comment",
             "description": "description", "valid": "valid"}

_VALUES = "a value or a list; [Not], [RegExp], [regexp], [NotRegExp], [Notregexp] modify it"
ACL_KEYS = {  # OTRS spellings (Properties, PossibleNot, ...) are read as these
    "properties": Key(dict, dict, "must match the ticket as this mail has changed it: "
                                  "{ticket: {queue: [...], state: [...], ...}, user: "
                                  "{role: [...], group_rw: [...]}, dynamic_field: {NAME: [...]}}"
                                  f"; {_VALUES}"),
    "properties_database": Key(dict, dict, "the same, matched against the ticket as stored"),
    "possible": Key(dict, dict, "only these values may be set: {ticket: {queue: [...]}, "
                                f"action: [{', '.join(ACTIONS)}]}}"),
    "possible_add": Key(dict, dict, "values added back to possible"),
    "possible_not": Key(dict, dict, "values that may not be set"),
    "stop_after_match": Key(bool, False, "no later ACL (by name) is applied after this one"),
    "comment": Key(str, "", "free text"),
    "description": Key(str, "", "free text"),
    "valid": Key(bool, True, "no: the ACL is off"),
}


def _norm(key) -> str:
    return str(key).lower().replace("_", "").replace("-", "")


# ---- loading --------------------------------------------------------------------------------
class _Loader:
    def __init__(self, config, problems, file):
        self.config, self.problems, self.file = config, problems, file

    def bad(self, mapping, key, message):
        line = mapping.line_of(key) if isinstance(mapping, LineDict) else \
            getattr(mapping, "line", 0)
        self.problems.append(Problem(getattr(mapping, "file", self.file), line, message))

    def patterns(self, where, mapping, key, value, acl_name) -> list[Pattern]:
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if isinstance(item, (dict, list)):
                self.bad(mapping, key, f"ACL {acl_name!r}: {where}: values must be text")
                continue
            try:
                out.append(Pattern.parse(item))
            except re.error as exc:
                self.bad(mapping, key, f"ACL {acl_name!r}: {where}: bad regular expression "
                                       f"{item!r}: {exc}")
        return out

    def known(self, kind, acl_name, mapping, key, patterns):
        known = {"queue": self.config.queues, "state": self.config.states,
                 "priority": self.config.priorities, "owner": self.config.agents,
                 "responsible": self.config.agents, "user.login": self.config.agents,
                 "user.role": self.config.roles, "user.group": self.config.groups,
                 "action": ACTIONS}.get(kind)
        if kind.startswith("user.group_"):
            known = self.config.groups
        if known is None:
            return
        for p in patterns:
            if p.regex is None and p.value and p.value not in known:
                self.bad(mapping, key, f"ACL {acl_name!r}: unknown {kind.split('.')[-1]} "
                                       f"{p.value!r}")

    def sections(self, acl_name, where, body) -> list:
        """(section, normalised name, contents) of a properties/possible block."""
        if not body:
            return []
        if not isinstance(body, dict):
            self.bad(body, None, f"ACL {acl_name!r}: {where} must be a mapping")
            return []
        return [(section, _norm(section), inner) for section, inner in body.items()]

    def collect(self, out, canon, acl_name, where, section, inner, key, value) -> None:
        pats = self.patterns(f"{where}.{section}.{key}", inner, key, value, acl_name)
        self.known(canon, acl_name, inner, key, pats)
        out.setdefault(canon, []).extend(pats)

    def match_section(self, acl_name, where, body) -> dict[str, list[Pattern]]:
        out: dict[str, list[Pattern]] = {}
        for section, s, inner in self.sections(acl_name, where, body):
            if not isinstance(inner, dict):
                self.bad(body, section, f"ACL {acl_name!r}: {where}.{section} must be a mapping")
                continue
            for key, value in inner.items():
                canon = self.match_key(s, key)
                if canon is None:
                    self.bad(inner, key, f"ACL {acl_name!r}: {where}.{section}: unknown key "
                                         f"{key!r}")
                    continue
                self.collect(out, canon, acl_name, where, section, inner, key, value)
        return out

    @staticmethod
    def dynamic_field(key) -> str | None:
        m = re.fullmatch(r"(?i)dynamic_?field_(.+)", str(key))
        return f"dynamic_field.{m.group(1)}" if m else None

    def match_key(self, section, key) -> str | None:
        k = _norm(key)
        if section == "ticket":
            return TICKET_KEYS.get(k) or self.dynamic_field(key)
        if section == "dynamicfield":
            return self.dynamic_field(key)
        if section == "user":
            if str(key).lower().startswith("group_"):
                return f"user.group_{str(key).split('_', 1)[1].lower()}"
            return f"user.{USER_KEYS[k]}" if k in USER_KEYS else None
        if section in SECTIONS:
            return SECTIONS[section].get(k)
        return None

    def change_section(self, acl_name, where, body) -> dict[str, list[Pattern]]:
        out: dict[str, list[Pattern]] = {}
        for section, s, inner in self.sections(acl_name, where, body):
            if s == "action":
                self.actions(acl_name, where, body, section, inner, out)
                continue
            if s not in ("ticket", "dynamicfield") or not isinstance(inner, dict):
                self.bad(body, section, f"ACL {acl_name!r}: {where}: {section!r} must be "
                                        f"Ticket/ticket or Action/action (a mapping or list)")
                continue
            for key, value in inner.items():
                canon = self.dynamic_field(key) if s == "dynamicfield" else \
                    (TICKET_KEYS.get(_norm(key)) or self.dynamic_field(key))
                if canon is None or not (canon in POSSIBLE_TICKET or
                                         canon.startswith("dynamic_field.")):
                    self.bad(inner, key, f"ACL {acl_name!r}: {where}.{section}: cannot restrict "
                                         f"{key!r}")
                    continue
                self.collect(out, canon, acl_name, where, section, inner, key, value)
        return out

    def actions(self, acl_name, where, body, section, inner, out):
        """Action: [list] (whitelist in possible) or {AgentTicketClose: 0} (0 = not allowed)."""
        if isinstance(inner, dict):
            items = [(name, bool(flag)) for name, flag in inner.items()]
        elif isinstance(inner, list):
            items = [(name, True) for name in inner]
        else:
            self.bad(body, section, f"ACL {acl_name!r}: {where}.{section} must be a list or "
                                    f"a mapping")
            return
        for name, allowed in items:
            text = str(name)
            pat_text = _MOD.sub("", text)
            ours = OTRS_ACTIONS.get(_norm(pat_text), pat_text)
            if ours not in ACTIONS and not _MOD.match(text):
                if re.match(r"(?i)^(agent|customer)", text):
                    continue  # an OTRS screen we have no command for: nothing to restrict
                self.bad(inner, name if isinstance(inner, dict) else None,
                         f"ACL {acl_name!r}: unknown action {text!r} (actions: "
                         f"{', '.join(ACTIONS)})")
                continue
            prefix = _MOD.match(text).group(0) if _MOD.match(text) else ""
            try:
                pat = Pattern.parse(prefix + ours)
            except re.error as exc:
                self.bad(inner, None, f"ACL {acl_name!r}: bad regular expression {text!r}: {exc}")
                continue
            if isinstance(inner, dict):
                if not allowed:   # mapping form (OTRS 3): 0 removes it, 1 changes nothing
                    out.setdefault("action!", []).append(pat)
            else:
                out.setdefault("action", []).append(pat)

    def acl(self, name, body, container, key) -> Acl | None:
        if not isinstance(body, dict):
            self.bad(container, key, f"ACL {name!r} must be a mapping")
            return None
        acl = Acl(str(name), getattr(body, "file", self.file), getattr(body, "line", 0))
        for k, value in body.items():
            n = _norm(k)
            if n in TOP_MATCH:
                setattr(acl, TOP_MATCH[n], self.match_section(name, k, value))
            elif n in TOP_CHANGE:
                change = self.change_section(name, k, value)
                removed = change.pop("action!", [])
                setattr(acl, TOP_CHANGE[n], change)
                if removed:
                    acl.possible_not.setdefault("action", []).extend(removed)
            elif n == "stopaftermatch":
                acl.stop_after_match = bool(value)
            elif n in TOP_OTHER:
                if n == "valid" and value is False:
                    return None
            else:
                self.bad(body, k, f"ACL {name!r}: unknown key {k!r} (known: "
                                  f"{', '.join(ACL_KEYS)})")
        return acl

    def otrs_export(self, item) -> Acl | None:
        """One entry of OTRS's ACL export: Name, ConfigMatch, ConfigChange, StopAfterMatch."""
        if not isinstance(item, dict) or "Name" not in item:
            self.bad(item, None, "an ACL list entry needs Name (OTRS export format)")
            return None
        if str(item.get("ValidID", 1)) != "1":
            return None
        body = LineDict()
        body.file, body.line = getattr(item, "file", self.file), getattr(item, "line", 0)
        body.key_lines = {}
        for part in ("ConfigMatch", "ConfigChange"):
            for k, v in (item.get(part) or {}).items():
                body[k] = v
                body.key_lines[k] = (item.get(part).line_of(k)
                                     if isinstance(item.get(part), LineDict) else body.line)
        if item.get("StopAfterMatch"):
            body["StopAfterMatch"] = bool(int(item["StopAfterMatch"]))
        return self.acl(item["Name"], body, item, "Name")


def load_acls(config, problems: list[Problem]) -> None:
    acls: dict[str, Acl] = {}
    folder = config.dir / "acl.d"
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        config.files.append(path)
        try:
            data = load_yaml(path, str(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        loader = _Loader(config, problems, str(path))
        found: list[Acl] = []
        if isinstance(data, LineList):
            found = [a for a in (loader.otrs_export(i) for i in data) if a]
        elif isinstance(data, dict):
            body = data.get("acls", data) if set(data) == {"acls"} else data
            found = [a for a in (loader.acl(n, b, body, n) for n, b in body.items()) if a]
        else:
            problems.append(Problem(str(path), 1, "an acl.d file maps ACL names to ACLs"))
        for acl in found:
            if acl.name in acls:
                problems.append(Problem(acl.file, acl.line, f"ACL {acl.name!r} is defined twice "
                                                            f"(also {acls[acl.name].file})"))
            acls[acl.name] = acl
    config.acl = AclEngine(list(acls.values()), config.superusers)


SECTION = ConfigSection("acl", load_acls, keys=(
    ("acl.d/*.yaml", Key(dict, dict, "ACL name -> ACL; ACLs apply in name order",
                         each=ACL_KEYS, item="ACL", example="100-example")),))
