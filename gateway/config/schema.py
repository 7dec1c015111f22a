"""The config schema: every key with its type, default and a one-line doc, in one place.

``section(mapping, SPEC, problems)`` checks one YAML mapping against a spec and returns a plain
dict with defaults filled in; unknown keys and wrong types become Problems with file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config.yamlload import LineDict, Problem


@dataclass(frozen=True)
class Key:
    type: type | tuple
    default: Any
    doc: str
    choices: tuple = ()   # the allowed values, when only a few are


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {str: "text", int: "a whole number", bool: "yes/no", list: "a list",
            dict: "a mapping", float: "a number"}.get(t, t.__name__)


def section(mapping, spec: dict[str, Key], problems: list[Problem], where: str) -> dict:
    """Validate ``mapping`` against ``spec``; return values with defaults applied."""
    out = {k: (v.default() if callable(v.default) else v.default) for k, v in spec.items()}
    if mapping is None:
        return out
    if not isinstance(mapping, dict):
        problems.append(Problem(_file(mapping), _line(mapping), f"{where} must be a mapping"))
        return out
    for key, value in mapping.items():
        line = mapping.line_of(key) if isinstance(mapping, LineDict) else 0
        if key not in spec:
            known = ", ".join(sorted(spec))
            problems.append(Problem(_file(mapping), line,
                                    f"unknown key {key!r} in {where} (known keys: {known})"))
            continue
        want = spec[key].type
        if value is None and spec[key].default is None:
            continue
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not _isinstance(value, want):
            problems.append(Problem(_file(mapping), line,
                                    f"{where}: {key!r} must be {_type_name(want)}, got {value!r}"))
            continue
        if spec[key].choices and value not in spec[key].choices:
            problems.append(Problem(_file(mapping), line,
                                    f"{where}: {key!r} must be one of "
                                    f"{', '.join(map(str, spec[key].choices))}, got {value!r}"))
            continue
        out[key] = value
    return out


def _isinstance(value, want) -> bool:
    wants = want if isinstance(want, tuple) else (want,)
    if bool in wants and isinstance(value, bool):
        return True
    if isinstance(value, bool) and bool not in wants:
        return False
    return isinstance(value, wants)


def _file(obj) -> str:
    return getattr(obj, "file", "?")


def _line(obj) -> int:
    return getattr(obj, "line", 0)


# ---- ticketgate.yaml -------------------------------------------------------------------------
MAIN = {
    "database": Key(str, "sqlite:///{data_dir}/ticketgate.db",
                    "SQLAlchemy URL; {data_dir} is replaced; sqlite (WAL) or postgresql+psycopg"),
    "data_dir": Key(str, "../var", "where the SQLite database lives; relative to the conf dir"),
    "fqdn": Key(str, "localhost", "host name used in our own Message-IDs"),
    "default_queue": Key(str, "Unassigned", "queue for mail that nothing routes elsewhere"),
    "system_addresses": Key(list, list, "addresses we receive on: [{address, name, queue}]"),
    "ticket_number": Key(dict, dict, "ticket number generator and subject hook"),
    "follow_up": Key(dict, dict, "where follow-up references are searched"),
    "states": Key(list, None, "ticket states [{name, type}]; OTRS defaults when absent"),
    "priorities": Key(list, None, "priorities [\"1 very low\", ...]; OTRS defaults when absent"),
    "default_priority": Key(str, "3 normal", "priority of a new ticket"),
    "processing": Key(dict, dict, "inbound processing: retries before quarantine"),
    "escalation": Key(dict, dict, "escalation behaviour: suspend_pending"),
    "listeners": Key(list, list, "SMTP/LMTP listeners (daemon)"),
    "mail_accounts": Key(list, list, "IMAP mail accounts (daemon)"),
    "outbound": Key(dict, dict, "smarthost for outgoing mail (notifier)"),
    "prefilters": Key(dict, dict, "built-in pre-filters and their switches"),
    "agent_auth": Key(dict, dict, "how an agent's mail proves who sent it"),
}

TICKET_NUMBER = {
    "generator": Key(str, "date_checksum", "date_checksum (YYYYMMDD + system id + counter + "
                                           "check digit) or autoincrement"),
    "system_id": Key(str, "10", "two digits that make our numbers ours"),
    "hook": Key(str, "Ticket#", "subject hook text before the number"),
    "divider": Key(str, "", "text between hook and number"),
    "min_counter_size": Key(int, 5, "autoincrement: zero-pad the counter to this many digits"),
}

FOLLOW_UP = {
    "references": Key(str, "always", "In-Reply-To/References naming our Message-IDs: always | "
                                     "subject_match (only with the same subject) | off"),
    "search_body": Key(bool, False, "also look for a ticket number in the body text"),
    "search_attachments": Key(bool, False, "also look in text/plain and text/html attachments"),
}

ESCALATION = {
    "suspend_pending": Key(bool, True, "pending tickets do not escalate while pending"),
}

PROCESSING = {
    "max_attempts": Key(int, 5, "failed processing attempts before a mail is quarantined"),
}

SYSTEM_ADDRESS = {
    "address": Key(str, None, "the email address"),
    "name": Key(str, "", "display name used as sender"),
    "queue": Key(str, None, "queue that mail to this address goes to"),
}

# ---- queues.yaml -----------------------------------------------------------------------------
QUEUE = {
    "group": Key(str, None, "group whose members may work this queue"),
    "calendar": Key(str, "default", "calendar for escalation and unlock times"),
    "escalation": Key(dict, dict, "first_response/update/solution minutes and *_notify percent"),
    "follow_up": Key(str, "possible", "follow-up to a closed ticket: possible | reject | new_ticket"),
    "follow_up_state": Key(str, "open", "state a reopened ticket gets"),
    "lock_after_follow_up": Key(bool, False, "lock a reopened ticket to its previous owner"),
    "unlock_timeout": Key(int, 0, "working minutes without agent activity before unlock"),
    "system_address": Key(str, None, "address our mail to customers of this queue comes from"),
    "auto_responses": Key(dict, dict, "template per type: auto_reply, auto_reject, "
                                      "auto_follow_up, auto_reply_new_ticket"),
    "salutation": Key(str, "", "text put before every mail body of this queue"),
    "signature": Key(str, "", "text put after every mail body of this queue"),
    "comment": Key(str, "", "free text for admins"),
}
FOLLOW_UP_OPTIONS = ("possible", "reject", "new_ticket")
AUTO_RESPONSE_TYPES = ("auto_reply", "auto_reject", "auto_follow_up", "auto_reply_new_ticket")

# ---- agents.yaml -----------------------------------------------------------------------------
AGENTS_FILE = {
    "groups": Key(dict, dict, "group name -> {comment}"),
    "roles": Key(dict, dict, "role name -> {groups: {group: [rights]}}"),
    "agents": Key(dict, dict, "login -> {name, email(s), roles, groups}"),
    "direct_group_rights": Key(bool, True, "allow agent -> group rights besides roles"),
    "superusers": Key(list, list, "agents that bypass ACLs (named explicitly)"),
}
GROUP = {"comment": Key(str, "", "free text")}
ROLE = {"groups": Key(dict, dict, "group -> list of rights"), "comment": Key(str, "", "free text")}
AGENT = {
    "name": Key(str, "", "full name"),
    "email": Key((str, list), None, "one address or a list"),
    "roles": Key(list, list, "roles the agent has"),
    "groups": Key(dict, dict, "direct group -> rights (if direct_group_rights)"),
    "valid": Key(bool, True, "a disabled agent is treated as a customer"),
    "notifications": Key(dict, dict, "event -> yes/no opt-out"),
}
RIGHTS = ("ro", "move_into", "create", "note", "owner", "priority", "rw")

DEFAULT_STATES = [
    ("new", "new"), ("open", "open"), ("pending reminder", "pending reminder"),
    ("pending auto close+", "pending auto"), ("pending auto close-", "pending auto"),
    ("closed successful", "closed"), ("closed unsuccessful", "closed"),
    ("merged", "merged"), ("removed", "removed"),
]
STATE_TYPES = ("new", "open", "pending reminder", "pending auto", "closed", "merged", "removed")
DEFAULT_PRIORITIES = ["1 very low", "2 low", "3 normal", "4 high", "5 very high"]

SECTIONS = {
    "ticketgate.yaml": MAIN, "ticketgate.yaml ticket_number": TICKET_NUMBER,
    "ticketgate.yaml follow_up": FOLLOW_UP, "ticketgate.yaml processing": PROCESSING,
    "ticketgate.yaml escalation": ESCALATION,
    "ticketgate.yaml system_addresses[]": SYSTEM_ADDRESS, "queues.yaml queues.NAME": QUEUE,
    "agents.yaml": AGENTS_FILE, "agents.yaml roles.NAME": ROLE, "agents.yaml agents.LOGIN": AGENT,
}
