"""Service level agreements: escalation times (and optionally a calendar) by ticket type,
customer or queue, overriding the queue's own. ``conf/sla.yaml``:

    slas:
      - name: Gold
        match: {customer_id: '^(ACME|Globex)$'}     # regexes; all must hold
        escalation: {first_response: 60, first_response_notify: 80, solution: 480}
      - name: Incidents
        match: {type: '^Incident$'}
        calendar: around-the-clock
        escalation: {first_response: 30}

Keys of ``match``: type, customer_id, customer_user, queue, priority. The first SLA that
matches a ticket applies. A postmaster filter can pin one per ticket by setting the dynamic
field ``SLA`` to its name (``set: {dynamic_fields: {SLA: Gold}}``); that wins over matching.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config import ConfigSection, Problem
from gateway.config.model import EscalationTimes
from gateway.config.core_keys import ESCALATION_TIMES
from gateway.config.schema import REQUIRED, Key, section
from gateway.config.yamlload import ConfigError, LineDict, load_yaml
from gateway.sla.deadlines import EscalationTimes

MATCH_FIELDS = ("type", "customer_id", "customer_user", "queue", "priority")
SLA_KEYS = {
    "name": Key(str, REQUIRED, "name (a filter can pin it with dynamic field SLA)",
                example="Gold"),
    "description": Key(str, "", "free text"),
    "match": Key(dict, dict, f"field -> regex, all must hold; fields: {', '.join(MATCH_FIELDS)}"),
    "calendar": Key(str, None, "calendar to count in (default: the queue's)"),
    "escalation": Key(dict, dict, "escalation times instead of the queue's",
                      keys=ESCALATION_TIMES),
}
SLA_FILE = {"slas": Key(list, list, "SLAs in order; the first that matches applies",
                        each=SLA_KEYS, item="SLA")}
PIN_FIELD = "SLA"


@dataclass
class SLA:
    name: str
    match: dict[str, re.Pattern]
    calendar: str | None
    escalation: EscalationTimes

    def matches(self, fields: dict) -> bool:
        return all(pattern.search(str(fields.get(key) or "")) for key, pattern in
                   self.match.items())


def find(config, fields: dict, dynamic_fields: dict | None) -> SLA | None:
    slas = config.slas
    pinned = (dynamic_fields or {}).get(PIN_FIELD)
    if pinned:
        for sla in slas:
            if sla.name == pinned:
                return sla
    for sla in slas:
        if sla.match and sla.matches(fields):
            return sla
    return None


def load_slas(config, problems: list[Problem]) -> None:
    config.slas = []
    path = config.dir / "sla.yaml"
    if not path.exists():
        return
    config.files.append(path)
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return
    if not isinstance(data, dict) or not isinstance(data.get("slas", []), list):
        problems.append(Problem(str(path), getattr(data, "line", 1),
                                "sla.yaml must have 'slas:' with a list of SLAs"))
        return
    seen = set()
    for s in section(data, SLA_FILE, problems, "sla.yaml")["slas"]:
        if not s["name"]:
            continue    # reported: a name is required
        what = f"SLA {s['name']!r}"
        if s["name"] in seen:
            problems.append(Problem(s.file, s.line, f"{what} defined twice"))
        seen.add(s["name"])
        patterns = {}
        for key, regex in s["match"].items():
            where = s["match"].line_of(key) if isinstance(s["match"], LineDict) else s.line
            if key not in MATCH_FIELDS:
                problems.append(Problem(s.file, where, f"{what}: cannot match on {key!r} "
                                                       f"(fields: {', '.join(MATCH_FIELDS)})"))
                continue
            try:
                patterns[key] = re.compile(str(regex), re.IGNORECASE)
            except re.error as exc:
                problems.append(Problem(s.file, where, f"{what}: bad regex for {key}: {exc}"))
        if s["calendar"] and config.calendars and s["calendar"] not in config.calendars:
            problems.append(Problem(s.file, s.line_of("calendar"),
                                    f"{what}: unknown calendar {s['calendar']!r}"))
        try:
            times = EscalationTimes(**s["escalation"])
        except ValueError as exc:
            problems.append(Problem(s.file, s.line_of("escalation"), f"{what}: escalation: {exc}"))
            continue
        config.slas.append(SLA(s["name"], patterns, s["calendar"], times))


SECTION = ConfigSection("slas", load_slas, keys=(("sla.yaml", SLA_FILE),))
