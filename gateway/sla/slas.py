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
from gateway.config.schema import Key, section
from gateway.config.yamlload import ConfigError, LineDict, load_yaml
from gateway.sla.deadlines import EscalationTimes

SLA_KEYS = {
    "name": Key(str, None, "name (a filter can pin it with dynamic field SLA)"),
    "description": Key(str, "", "free text"),
    "match": Key(dict, dict, "type/customer_id/customer_user/queue/priority regexes"),
    "calendar": Key(str, None, "calendar to count in (default: the queue's)"),
    "escalation": Key(dict, dict, "first_response/update/solution minutes and *_notify %"),
}
MATCH_FIELDS = ("type", "customer_id", "customer_user", "queue", "priority")
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
    slas = getattr(config, "slas", None) or []
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
    items = data.get("slas", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        problems.append(Problem(str(path), getattr(data, "line", 1),
                                "sla.yaml must have 'slas:' with a list of SLAs"))
        return
    seen = set()
    for item in items:
        line = getattr(item, "line", 0)
        s = section(item, SLA_KEYS, problems, "sla")
        if not s["name"]:
            problems.append(Problem(str(path), line, "an SLA needs a name"))
            continue
        if s["name"] in seen:
            problems.append(Problem(str(path), line, f"SLA {s['name']!r} defined twice"))
        seen.add(s["name"])
        patterns = {}
        for key, regex in (s["match"] or {}).items():
            where = s["match"].line_of(key) if isinstance(s["match"], LineDict) else line
            if key not in MATCH_FIELDS:
                problems.append(Problem(str(path), where, f"SLA {s['name']!r}: cannot match on "
                                                          f"{key!r} (fields: "
                                                          f"{', '.join(MATCH_FIELDS)})"))
                continue
            try:
                patterns[key] = re.compile(str(regex), re.IGNORECASE)
            except re.error as exc:
                problems.append(Problem(str(path), where,
                                        f"SLA {s['name']!r}: bad regex for {key}: {exc}"))
        if s["calendar"] and s["calendar"] not in config.calendars:
            problems.append(Problem(str(path), item.line_of("calendar"),
                                    f"SLA {s['name']!r}: unknown calendar {s['calendar']!r}"))
        try:
            times = EscalationTimes.from_config(s["escalation"] or {})
        except ValueError as exc:
            problems.append(Problem(str(path), item.line_of("escalation"),
                                    f"SLA {s['name']!r}: escalation: {exc}"))
            continue
        config.slas.append(SLA(s["name"], patterns, s["calendar"], times))


SECTION = ConfigSection("slas", load_slas)
