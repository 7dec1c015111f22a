"""Trusted control headers: ``X-Ticket-*`` (and OTRS's ``X-OTRS-*``) set ticket fields, but only
for mail from a source conf marks as trusted (a mail account or listener with ``trusted: yes``).
From any other source they are ignored and the trace says so, so a customer cannot route
their own mail.
"""
from __future__ import annotations

import re

from filters.builtin.verdict import Verdict
from gateway.parts import Prefilter

NAME = "trusted_headers"
FIELDS = {
    "queue": "queue", "priority": "priority", "state": "state", "type": "type",
    "owner": "owner", "responsible": "responsible", "lock": "lock", "title": "title",
    "customerid": "customer_id", "customeruser": "customer_user", "ignore": "ignore",
}
_HEADER = re.compile(r"^x-(?:ticket|otrs)-(followup-)?(dynamicfield-)?(.+)$", re.IGNORECASE)
_TRUE = {"yes", "true", "1", "on", "lock"}


def parse_control_headers(headers: list[tuple[str, str]]) -> tuple[dict, dict, list[str]]:
    """(settings, follow_up_settings, unknown header names) from X-Ticket-* headers."""
    sets: dict = {}
    follow: dict = {}
    unknown = []
    for name, value in headers:
        m = _HEADER.match(name)
        if not m:
            continue
        target = follow if m.group(1) else sets
        value = value.strip()
        if m.group(2):
            target.setdefault("dynamic_fields", {})[m.group(3)] = value
            continue
        key = FIELDS.get(m.group(3).lower().replace("-", ""))
        if key is None:
            unknown.append(name)
        elif key in ("lock", "ignore"):
            target[key] = value.lower() in _TRUE
        else:
            target[key] = value
    return sets, follow, unknown


def check(mail, *, trusted: bool) -> Verdict:
    names = [n for n, _ in mail.headers if _HEADER.match(n)]
    if not names:
        return Verdict.miss(NAME)
    if not trusted:
        return Verdict(NAME, True, f"ignored {', '.join(sorted(set(names)))}: source not trusted",
                       {"trusted": False, "headers": names})
    sets, follow, unknown = parse_control_headers(mail.headers)
    data = {"trusted": True, "settings": {"set": sets, "set_on_follow_up": follow}}
    reason = f"honoured {', '.join(sorted(set(names) - set(unknown)))} (trusted source)"
    if unknown:
        reason += f"; unknown {', '.join(unknown)}"
    if sets.get("ignore"):
        # never a silent drop: the raw mail stays in the inbound table, status "ignored",
        # with this reason (gateway/processing.py) and a warning in the log
        data["ignore"] = True
        reason += "; X-Ticket-Ignore: the mail is kept as ignored inbound mail, no ticket"
    return Verdict(NAME, True, reason, data)


def _check(mail, envelope, settings, config) -> Verdict:
    return check(mail, trusted=bool(envelope.trusted))


PREFILTER = Prefilter(
    NAME, _check, doc="X-Ticket-*/X-OTRS-* control headers, honoured from trusted sources only")
