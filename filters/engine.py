"""Postmaster filters: load conf/filters.d/*.yaml at config load, run the rules on each mail.

``FilterEngine.run(mail)`` returns an ``Outcome`` (settings, follow_up_settings, ignore, trace)
for the pipeline step ``postmaster_filters`` (gateway/routing.py). Rules run in file-name order,
then file order; later rules override what earlier ones set; ``stop: true`` ends evaluation
after a match; ``ignore: yes`` drops the mail and also ends it.

Every search is bounded (filters/safe_regex.py): text is capped per condition and, with the
``regex`` package, each search has a time limit; a timed-out condition counts as not matched
and the trace names the rule. Limits are configurable in conf/filters.yaml (optional)::

    limits:
      max_body_chars: 65536      # characters of the body a condition looks at
      max_header_chars: 8192     # per header occurrence (and subject, addresses, file names)
      match_timeout: 0.05        # seconds per search (regex package only)
      mail_budget: 2.0           # seconds for all rules on one mail; later rules are skipped
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from filters import safe_regex
from filters.rules import RULE_KEYS, Rule, RuleParser, check_value
from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key, fields_from, section
from gateway.config.yamlload import ConfigError, load_yaml

log = logging.getLogger("ticketgate.filters")
SHOW = 120          # matched values in the trace are cut to this many characters


def _positive_number(value) -> str | None:
    return None if value > 0 else "must be a positive number"


LIMITS = {
    "max_body_chars": Key(int, 65536, "characters of the body a condition looks at",
                          check=_positive_number),
    "max_header_chars": Key(int, 8192, "per header occurrence (and subject, addresses, file "
                                       "names)", check=_positive_number),
    "match_timeout": Key(float, 0.05, "seconds per search (regex package only)",
                         check=_positive_number),
    "mail_budget": Key(float, 2.0, "seconds for all rules on one mail; later rules are skipped",
                       check=_positive_number),
}
FILTERS_FILE = {"limits": Key(dict, dict, "bounds on every search", keys=LIMITS, noun="limit")}


@fields_from(LIMITS)
class Limits:
    """How far the postmaster filters search (fields: the keys of LIMITS)."""


@dataclass
class Outcome:
    settings: dict = field(default_factory=dict)
    follow_up_settings: dict = field(default_factory=dict)
    ignore: str | None = None          # name of the rule that dropped the mail
    trace: list[dict] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    evaluated: int = 0                 # rules evaluated


def cut(text: str, limit: int = SHOW) -> str:
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _window(value: str, m) -> str:
    """The value around the match, for the trace."""
    if len(value) <= SHOW:
        return cut(value)
    start = max(0, m.start() - 30)
    piece = value[start:start + SHOW - 2]
    return cut(("…" if start else "") + piece + "…", SHOW + 2)


class MailView:
    """The texts each condition looks at, computed once per mail and capped."""

    def __init__(self, mail, limits: Limits):
        self.mail, self.limits = mail, limits
        self._cache: dict[str, list[tuple[str, str]]] = {}
        self._headers: dict[str, list[tuple[str, str]]] | None = None

    def candidates(self, key: str) -> list[tuple[str, str]]:
        """[(where, text)] for condition ``key``: where names the header/part."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._compute(key)
        return found

    def _compute(self, key):
        mail, cap = self.mail, self.limits.max_header_chars
        if key == "subject":
            return [("Subject", (mail.subject or "")[:cap])]
        if key == "body":
            return [("body", (mail.body or "")[:self.limits.max_body_chars])]
        if key == "attachment_name":
            return [("attachment", a.filename[:cap]) for a in mail.attachments if a.filename]
        if key in ("from", "to", "cc"):
            addresses = {"from": mail.from_, "to": mail.to, "cc": mail.cc}[key]
            label = key.capitalize()
            out = []
            for a in addresses:
                out.append((label, a.email[:cap]))
                if a.name:
                    out.append((label, str(a)[:cap]))
            return out or self._header(key)
        return self._header(key)

    def _header(self, key):
        if self._headers is None:
            self._headers = {}
            for name, value in self.mail.headers:
                self._headers.setdefault(name.lower(), []).append(
                    (name, value[:self.limits.max_header_chars]))
        return self._headers.get(key, [])


class FilterEngine:
    def __init__(self, rules: list[Rule], limits: Limits | None = None, config=None):
        self.rules = list(rules)
        self.limits = limits or Limits()
        self.config = config

    def run(self, mail) -> Outcome:
        out = Outcome()
        view = MailView(mail, self.limits)
        deadline = time.monotonic() + self.limits.mail_budget if self.limits.mail_budget else None
        for index, rule in enumerate(self.rules):
            if deadline is not None and time.monotonic() > deadline:
                skipped = [r.name for r in self.rules[index:]]
                out.trace.append({"message": f"time budget of {self.limits.mail_budget:g}s for "
                                             f"this mail used up: {len(skipped)} rule(s) not "
                                             f"checked", "skipped": skipped, "timed_out": True})
                log.warning("filters: mail budget used up, %d rules skipped", len(skipped))
                break
            out.evaluated += 1
            matched, matches = self._check(rule, view, out, deadline)
            if not matched:
                continue
            out.matched.append(rule.name)
            self._apply(rule, matches, out)
            if rule.ignore:
                out.ignore = rule.name
                out.trace.append({"message": f"rule {rule.name!r}: ignore: yes, the mail is "
                                             f"dropped; no further rules", "rule": rule.name})
                break
            if rule.stop:
                rest = len(self.rules) - index - 1
                out.trace.append({"message": f"rule {rule.name!r}: stop: {rest} later rule(s) "
                                             f"not checked", "rule": rule.name, "stop": True})
                break
        if not self.rules:
            out.trace.append({"message": "no postmaster filter rules configured"})
        return out

    # -- one rule ----------------------------------------------------------------------------
    def _check(self, rule: Rule, view: MailView, out: Outcome, deadline):
        timeout = self.limits.match_timeout
        matches: dict = {}
        held: list[dict] = []
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        for cond in rule.conditions:
            hit = None
            candidates = view.candidates(cond.key)
            try:
                for where, text in candidates:
                    m = safe_regex.search(cond.regex, text, timeout)
                    if m is not None:
                        hit = (where, text, m)
                        break
            except safe_regex.MatchTimeout as exc:
                log.warning("filter rule %r (%s): condition %r timed out", rule.name,
                            rule.where, cond.label)
                out.trace.append({
                    "message": f"rule {rule.name!r} ({rule.where}): condition {cond.label!r} "
                               f"/{cond.shown}/ timed out ({exc}): rule not applied",
                    "rule": rule.name, "where": rule.where, "matched": False,
                    "timed_out": True, "condition": cond.label, "pattern": cond.pattern,
                    "conditions": held})
                return False, matches
            if cond.negated:
                ok = hit is None
                info = {"condition": f"not {cond.label}", "pattern": cond.pattern,
                        "negated": True}
                if hit is not None:
                    info.update(header=hit[0], value=_window(hit[1], hit[2]),
                                matched=cut(hit[2].group(0), 80))
            else:
                ok = hit is not None
                info = {"condition": cond.label, "pattern": cond.pattern}
                if hit is not None:
                    matches[cond.key] = hit[2]
                    info.update(header=hit[0], value=_window(hit[1], hit[2]),
                                matched=cut(hit[2].group(0), 80))
                else:
                    info["checked"] = [w for w, _ in candidates][:5] or "absent"
            if not ok:
                out.trace.append(self._miss(rule, cond, info, held))
                return False, matches
            held.append(info)
        parts = "; ".join(_describe(c) for c in held) or "no conditions (matches every mail)"
        out.trace.append({"message": f"rule {rule.name!r} ({rule.where}) matched: {parts}",
                          "rule": rule.name, "where": rule.where, "matched": True,
                          "conditions": held})
        return True, matches

    def _miss(self, rule: Rule, cond, info: dict, held: list[dict]) -> dict:
        if cond.negated:
            why = (f"not {cond.label}: {info['header']} {info['value']!r} matches "
                   f"/{cond.shown}/")
        elif info.get("checked") == "absent":
            why = f"{cond.label}: no {cond.label} in this mail"
        else:
            why = f"{cond.label} does not match /{cond.shown}/"
        near = bool(held)
        line = {"rule": rule.name, "where": rule.where, "matched": False, "near_miss": near,
                "failed": info}
        if near:
            line["message"] = (f"rule {rule.name!r} ({rule.where}) near miss: "
                               f"{'; '.join(_describe(c) for c in held)}; but {why}")
            line["conditions"] = held
        else:
            line["message"] = f"rule {rule.name!r} ({rule.where}) no match: {why}"
        return line

    def _apply(self, rule: Rule, matches: dict, out: Outcome) -> None:
        for block, target in (("set", out.settings), ("set_on_follow_up",
                                                       out.follow_up_settings)):
            sets = rule.sets if block == "set" else rule.follow_up_sets
            if not sets:
                continue
            done: dict = {}
            for key, value in sets.items():
                if key == "ignore":
                    continue
                if isinstance(value, bool):
                    target[key] = done[key] = value
                elif key == "dynamic_fields":
                    fields = {name: tpl.render(matches) for name, tpl in value.items()}
                    target.setdefault("dynamic_fields", {}).update(fields)
                    done[key] = fields
                else:
                    text = value.render(matches)
                    if not value.static:
                        known = check_value(self.config, key, text) if self.config else text
                        if not text or known is None:
                            out.trace.append({
                                "message": f"rule {rule.name!r}: {block}.{key} from "
                                           f"{value.source!r} gives {text!r}, "
                                           f"{'empty' if not text else 'not a known ' + key}: "
                                           f"not set", "rule": rule.name, "key": key,
                                "value": text})
                            continue
                        text = known
                    target[key] = done[key] = text
            if done:
                shown = ", ".join(f"{k}={v!r}" for k, v in done.items())
                label = "sets" if block == "set" else "sets on follow-up"
                out.trace.append({"message": f"rule {rule.name!r} {label}: {shown}",
                                  "rule": rule.name, block: done})


def _describe(info: dict) -> str:
    if info.get("negated"):
        return f"{info['condition']} (no match)"
    return f"{info['condition']} {info.get('header', '')}: {info.get('matched', '')!r}"


# ---- config loading --------------------------------------------------------------------------
def load_rules(config, problems: list[Problem]) -> list[Rule]:
    directory = Path(config.dir) / "filters.d"
    if not directory.is_dir():
        return []
    parser = RuleParser(config, problems)
    rules: list[Rule] = []
    paths = sorted(p for p in directory.iterdir()
                   if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))
    for path in paths:
        config.files.append(path)
        try:
            data = load_yaml(path, str(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        rules.extend(parser.parse_file(data, str(path)))
    return rules


def load_limits(config, problems: list[Problem]) -> Limits:
    path = Path(config.dir) / "filters.yaml"
    if not path.exists():
        return Limits()
    config.files.append(path)
    try:
        data = load_yaml(path, str(path))
    except ConfigError as exc:
        problems.extend(exc.problems)
        return Limits()
    return Limits(**section(data, FILTERS_FILE, problems, "filters.yaml")["limits"])


def load_filters(config, problems: list[Problem]) -> None:
    """Config loader extension: conf/filters.d/*.yaml (+ optional conf/filters.yaml)."""
    try:
        limits = load_limits(config, problems)
        rules = load_rules(config, problems)
    except Exception as exc:  # noqa: BLE001 - a loader bug must read as a config problem
        log.exception("loading filters failed")
        problems.append(Problem(str(Path(config.dir) / "filters.d"), 0,
                                f"cannot load filters: {type(exc).__name__}: {exc}"))
        rules, limits = [], Limits()
    config.filters = rules
    config.filter_engine = FilterEngine(rules, limits, config)


SECTION = ConfigSection("filters", load_filters, keys=(
    ("filters.yaml", FILTERS_FILE),
    ("filters.d/*.yaml", Key(list, list, "postmaster filter rules, applied in file-name order, "
                                         "then in file order", each=RULE_KEYS))))
