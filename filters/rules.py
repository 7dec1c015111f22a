"""conf/filters.d/*.yaml -> Rule objects, with every problem reported as file:line.

A rule (see docs/filters.md)::

    - name: vip-branch
      description: Branch mail from BigCorp goes to VIP
      case_sensitive: no                # the default: regexes ignore case
      match:
        from: '@bigcorp\\.example$'
        subject: '^\\[(?P<branch>[A-Z]{2,4})\\]'
        X-Customer-Tier: gold           # any header, by name
        not:
          subject: newsletter
      set:
        queue: VIP
        title: "${subject.branch}: ${subject.0}"
        dynamic_fields: {Branch: "${subject.branch}"}
      set_on_follow_up:
        priority: 4 high
      stop: true

Values in ``set`` may use ``${CONDITION.GROUP}``: the group (name, or number; 0 = the whole
match) of the regex of match condition CONDITION. ``$${`` writes a literal ``${``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from filters import safe_regex
from gateway.config.schema import REQUIRED, Key
from gateway.config.yamlload import LineDict, Problem

SPECIAL_CONDITIONS = ("from", "to", "cc", "subject", "body", "attachment_name")
_TEXT = "; may use ${CONDITION.GROUP}"
SET_KEYS = {
    "queue": Key(str, None, "queue" + _TEXT),
    "priority": Key(str, None, "priority (a bare number means that priority)" + _TEXT),
    "state": Key(str, None, "state" + _TEXT),
    "type": Key(str, None, "ticket type" + _TEXT),
    "owner": Key(str, None, "owner (an agent's login)" + _TEXT),
    "responsible": Key(str, None, "responsible agent" + _TEXT),
    "lock": Key(bool, None, "lock the ticket"),
    "customer_id": Key(str, None, "customer id" + _TEXT),
    "customer_user": Key(str, None, "customer user" + _TEXT),
    "title": Key(str, None, "ticket title" + _TEXT),
    "dynamic_fields": Key(dict, dict, "field name -> value" + _TEXT),
    "ignore": Key(bool, None, "yes: drop the mail; no later rule runs"),
    "follow_up": Key(bool, None, "no: a new ticket even if the mail is a follow-up"),
}
FOLLOW_UP_KEYS = {key: SET_KEYS[key] for key in (
    "queue", "priority", "state", "type", "owner", "responsible", "customer_id", "title",
    "dynamic_fields")}
RULE_KEYS = {  # checked by RuleParser, whose messages name the rule
    "name": Key(str, REQUIRED, "unique name, shown in the trace", example="vip-branch"),
    "description": Key(str, "", "free text"),
    "match": Key(dict, REQUIRED, "condition -> regex, all must match: a header name or "
                                 f"{', '.join(SPECIAL_CONDITIONS)}; 'not: {{...}}' must not "
                                 "match; {} matches every mail", example={}),
    "set": Key(dict, dict, "what a new ticket gets", keys=SET_KEYS),
    "set_on_follow_up": Key(dict, dict, "what a follow-up changes", keys=FOLLOW_UP_KEYS),
    "stop": Key(bool, False, "no later rule is checked after this one matches"),
    "case_sensitive": Key(bool, False, "regexes respect case (default: they ignore it)"),
}
BOOL_KEYS = ("lock", "ignore", "follow_up")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable, no colon
_REF = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_REF_INSIDE = re.compile(r"^([^.\s]+(?:[^.]*[^.\s])?)\.(\w+)$")


@dataclass
class Condition:
    key: str                 # lower-case: "subject", "from", "x-spam-flag", ...
    label: str               # as written in the YAML
    pattern: str
    regex: object
    negated: bool = False
    line: int = 0
    shown: str = ""          # the pattern shortened for trace messages

    def __post_init__(self):
        short = self.pattern.replace("\n", " ")
        self.shown = self.shown or (short if len(short) <= 60 else short[:59] + "…")


@dataclass
class Template:
    """A set value: literal text and ``(condition key, group)`` references, in order."""
    source: str
    parts: list              # str | tuple[str, int | str]

    @property
    def static(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, matches: dict) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                m = matches.get(part[0])
                out.append((m.group(part[1]) or "") if m is not None else "")
        return "".join(out)


@dataclass
class Rule:
    name: str
    file: str
    line: int
    description: str = ""
    conditions: list[Condition] = field(default_factory=list)
    sets: dict = field(default_factory=dict)            # key -> Template | bool | dict
    follow_up_sets: dict = field(default_factory=dict)
    stop: bool = False
    case_sensitive: bool = False

    where: str = ""          # "file-name:line", for the trace

    def __post_init__(self):
        self.where = self.where or f"{self.file.rsplit('/', 1)[-1]}:{self.line}"

    @property
    def ignore(self) -> bool:
        return bool(self.sets.get("ignore"))


def _line(obj, key=None, default=0) -> int:
    if isinstance(obj, LineDict):
        return obj.line_of(key) if key is not None else obj.line
    return getattr(obj, "line", default)


class RuleParser:
    """Parse the rule files of one config; collects Problems, never raises for content."""

    def __init__(self, config, problems: list[Problem]):
        self.config = config
        self.problems = problems
        self.names: dict[str, str] = {}     # rule name -> "file:line" of its first definition

    def problem(self, file, line, message) -> None:
        self.problems.append(Problem(file, line, message))

    def parse_file(self, data, file: str) -> list[Rule]:
        if isinstance(data, LineDict) and not data:   # an empty file
            return []
        if not isinstance(data, list):
            self.problem(file, _line(data, default=1), "a filters.d file must be a YAML list of "
                                                       "rules ('- name: ...')")
            return []
        rules = []
        lines = getattr(data, "item_lines", [0] * len(data))
        for item, line in zip(data, lines):
            rule = self.parse_rule(item, file, line)
            if rule is not None:
                rules.append(rule)
        return rules

    def parse_rule(self, raw, file: str, line: int) -> Rule | None:
        if not isinstance(raw, dict):
            self.problem(file, line, f"a rule must be a mapping with name, match and set; "
                                     f"got {type(raw).__name__} {str(raw)[:60]!r}")
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problem(file, line, "rule without a name (every rule needs a unique 'name')")
            name = f"(unnamed rule at line {line})"
        else:
            first = self.names.get(name)
            if first:
                self.problem(file, _line(raw, "name"), f"rule {name!r}: duplicate name, first "
                                                       f"defined at {first}")
            else:
                self.names[name] = f"{file}:{_line(raw, 'name')}"
        what = f"rule {name!r}"
        for key in raw:
            if key not in RULE_KEYS:
                self.problem(file, _line(raw, key), f"{what}: unknown key {key!r} (known keys: "
                                                    f"{', '.join(RULE_KEYS)})")
        rule = Rule(name=name, file=file, line=line)
        rule.description = self._text(raw, "description", what, file) or ""
        rule.stop = self._bool(raw, "stop", what, file)
        rule.case_sensitive = self._bool(raw, "case_sensitive", what, file)
        match = raw.get("match")
        if match is None:
            self.problem(file, line, f"{what}: no 'match' (use 'match: {{}}' to match every "
                                     f"mail explicitly)")
        elif not isinstance(match, dict):
            self.problem(file, _line(raw, "match"), f"{what}: 'match' must be a mapping of "
                                                    f"condition: regex")
        else:
            rule.conditions = self._conditions(match, what, file, rule.case_sensitive, False)
        if "set" not in raw and "set_on_follow_up" not in raw:
            self.problem(file, line, f"{what}: neither 'set' nor 'set_on_follow_up': the rule "
                                     f"would do nothing")
        rule.sets = self._sets(raw, "set", SET_KEYS, rule, file)
        rule.follow_up_sets = self._sets(raw, "set_on_follow_up", FOLLOW_UP_KEYS, rule, file)
        return rule

    # -- pieces ------------------------------------------------------------------------------
    def _text(self, raw, key, what, file) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, (dict, list)) or isinstance(value, bool):
            self.problem(file, _line(raw, key), f"{what}: {key!r} must be text, got {value!r}")
            return None
        return str(value)

    def _bool(self, raw, key, what, file) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            self.problem(file, _line(raw, key), f"{what}: {key!r} must be yes/no (true/false), "
                                                f"got {value!r}")
            return False
        return value

    def _conditions(self, match, what, file, case_sensitive, negated) -> list[Condition]:
        out: list[Condition] = []
        seen: set[str] = set()
        for label, pattern in match.items():
            line = _line(match, label)
            if label == "not" and not negated:
                if not isinstance(pattern, dict):
                    self.problem(file, line, f"{what}: 'not' must be a mapping of "
                                             f"condition: regex")
                    continue
                out.extend(self._conditions(pattern, what, file, case_sensitive, True))
                continue
            if not isinstance(label, str) or not _HEADER_NAME.match(label) or label == "not":
                self.problem(file, line, f"{what}: {label!r} is not a header name or one of "
                                         f"{', '.join(SPECIAL_CONDITIONS)}")
                continue
            key = label.lower()
            if key in seen:
                self.problem(file, line, f"{what}: condition {label!r} given twice (combine "
                                         f"the regexes with '|' or use 'not:')")
                continue
            seen.add(key)
            if isinstance(pattern, bool) or pattern is None or isinstance(pattern, (dict, list)):
                self.problem(file, line, f"{what}: condition {label!r} must be a regex string, "
                                         f"got {pattern!r}" + (" (quote yes/no/on/off)"
                                                               if isinstance(pattern, bool)
                                                               else ""))
                continue
            pattern = str(pattern)
            try:
                regex = safe_regex.compile_rule_regex(pattern, case_sensitive=case_sensitive)
            except ValueError as exc:
                self.problem(file, line, f"{what}: condition {label!r}: {exc}")
                continue
            out.append(Condition(key, label, pattern, regex, negated, line))
        return out

    def _sets(self, raw, block, allowed, rule: Rule, file) -> dict:
        what = f"rule {rule.name!r}"
        data = raw.get(block)
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(file, _line(raw, block), f"{what}: {block!r} must be a mapping")
            return {}
        out: dict = {}
        for key, value in data.items():
            line = _line(data, key)
            if key not in allowed:
                hint = ""
                if block == "set_on_follow_up" and key in SET_KEYS:
                    hint = f"; {key!r} cannot be set on a follow-up"
                self.problem(file, line, f"{what}: unknown key {key!r} in {block} (known keys: "
                                         f"{', '.join(allowed)}){hint}")
                continue
            if key in BOOL_KEYS:
                if not isinstance(value, bool):
                    self.problem(file, line, f"{what}: {block}.{key} must be yes/no, "
                                             f"got {value!r}")
                elif key == "follow_up" and value:
                    self.problem(file, line, f"{what}: follow_up: yes does nothing; only "
                                             f"'follow_up: no' (force a new ticket) is meaningful")
                else:
                    out[key] = value
                continue
            if key == "dynamic_fields":
                if not isinstance(value, dict):
                    self.problem(file, line, f"{what}: {block}.dynamic_fields must map field "
                                             f"name to value")
                    continue
                fields = {}
                for fname, fvalue in value.items():
                    tpl = self._template(fvalue, rule, file, _line(value, fname),
                                         f"{block}.dynamic_fields.{fname}")
                    if tpl is not None:
                        fields[str(fname)] = tpl
                out[key] = fields
                continue
            tpl = self._template(value, rule, file, line, f"{block}.{key}")
            if tpl is None:
                continue
            if tpl.static:
                checked = self._check_value(key, tpl.source, what, file, line, block)
                if checked is None:
                    continue
                tpl = Template(checked, [checked])
            out[key] = tpl
        return out

    def _template(self, value, rule: Rule, file, line, where) -> Template | None:
        what = f"rule {rule.name!r}"
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            self.problem(file, line, f"{what}: {where} must be text, got {value!r}")
            return None
        source = str(value)
        parts: list = []
        pos = 0
        known = {c.key: c for c in rule.conditions if not c.negated}
        ok = True
        for m in _REF.finditer(source):
            if m.start() > pos:
                parts.append(source[pos:m.start()])
            pos = m.end()
            if m.group(0) == "$${":
                parts.append("${")
                continue
            ref = _REF_INSIDE.match(m.group(1).strip())
            if not ref:
                self.problem(file, line, f"{what}: {where}: bad reference {m.group(0)!r}; write "
                                         f"${{CONDITION.GROUP}}, e.g. ${{subject.1}} or "
                                         f"${{from.user}}")
                ok = False
                continue
            cond_key, group = ref.group(1).lower(), ref.group(2)
            cond = known.get(cond_key)
            if cond is None:
                negated = any(c.key == cond_key for c in rule.conditions)
                self.problem(file, line, f"{what}: {where}: {m.group(0)!r} refers to "
                                         f"{'negated ' if negated else 'no '}match condition "
                                         f"{ref.group(1)!r}" + (
                                             " (a 'not:' condition captures nothing)" if negated
                                             else f" (conditions: "
                                                  f"{', '.join(c.label for c in known.values()) or 'none'})"))
                ok = False
                continue
            count, names = safe_regex.group_names(cond.regex)
            if group.isdigit():
                if int(group) > count:
                    self.problem(file, line, f"{what}: {where}: {m.group(0)!r}: the regex of "
                                             f"{cond.label!r} has {count} group(s)")
                    ok = False
                    continue
                parts.append((cond_key, int(group)))
            elif group in names:
                parts.append((cond_key, group))
            else:
                self.problem(file, line, f"{what}: {where}: {m.group(0)!r}: the regex of "
                                         f"{cond.label!r} has no group named {group!r}"
                                         + (f" (named groups: {', '.join(sorted(names))})"
                                            if names else ""))
                ok = False
        if pos < len(source):
            parts.append(source[pos:])
        if not ok:
            return None
        merged: list = []
        for part in parts:  # join adjacent literals ("$${" splits them)
            if merged and isinstance(part, str) and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return Template(source, merged)

    def _check_value(self, key, value, what, file, line, block) -> str | None:
        """Check a static value against conf; returns the (normalised) value or None."""
        config = self.config
        known = check_value(config, key, value)
        if known is not None:
            return known
        choices = {"queue": sorted(config.queues), "state": sorted(config.states),
                   "priority": list(config.priorities), "owner": sorted(config.agents),
                   "responsible": sorted(config.agents)}[key]
        kind = "agent" if key in ("owner", "responsible") else key
        self.problem(file, line, f"{what}: {block}.{key}: unknown {kind} {value!r} "
                                 f"(known: {', '.join(choices)})")
        return None


def check_value(config, key, value: str) -> str | None:
    """The value if ``key: value`` names something that exists in conf, else None. A bare
    priority number (``4``) means the priority named ``"4 ..."``."""
    if key == "queue":
        return value if value in config.queues else None
    if key == "state":
        return value if value in config.states else None
    if key == "priority":
        if value in config.priorities:
            return value
        if value.isdigit():
            found = [p for p in config.priorities if p.split(" ", 1)[0] == value]
            return found[0] if len(found) == 1 else None
        return None
    if key in ("owner", "responsible"):
        return value if value in config.agents else None
    return value
