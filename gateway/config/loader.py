"""Load and validate a whole conf/ directory. Every problem names its file and line.

``load_config(dir)`` returns a Config or raises ConfigError listing *all* problems found,
like ``nginx -t``. Nothing is half-applied: callers swap configs only after a clean load.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gateway.config import schema as S
from gateway.config.section import ConfigSection
from gateway.config.model import Agent, Config, Queue, Role, SystemAddress
from gateway.config.yamlload import ConfigError, LineDict, Problem, load_yaml

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _optional(path: Path, problems: list[Problem], display: str):
    if not path.exists():
        return None
    try:
        return load_yaml(path, display)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def load_config(conf_dir: str | Path, sections: Sequence[ConfigSection] = ()) -> Config:
    """The core of conf/ (ticketgate.yaml, calendars, agents, queues), then each of
    ``sections`` in order. ``gateway.app.load_config`` passes every section of the product;
    this module imports none of them."""
    conf_dir = Path(conf_dir).resolve()
    problems: list[Problem] = []
    if not (conf_dir / "ticketgate.yaml").is_file():
        raise ConfigError([Problem(str(conf_dir), 0, "no ticketgate.yaml in this directory")])
    files: list[Path] = []

    broken: set[str] = set()

    def read(name):
        path = conf_dir / name
        if path.exists():
            files.append(path)
        before = len(problems)
        data = _optional(path, problems, str(path))
        if len(problems) > before:
            broken.add(name)
        return data

    main_raw = read("ticketgate.yaml")
    main = S.section(main_raw, S.MAIN, problems, "ticketgate.yaml")
    tn = S.section(main["ticket_number"], S.TICKET_NUMBER, problems, "ticket_number")
    if tn["generator"] not in ("date_checksum", "autoincrement"):
        problems.append(_at(main["ticket_number"], "generator",
                            f"ticket_number.generator must be date_checksum or autoincrement, "
                            f"got {tn['generator']!r}"))
    if not re.fullmatch(r"\d{1,4}", tn["system_id"]):
        problems.append(_at(main["ticket_number"], "system_id", "system_id must be 1-4 digits"))
    follow_up = S.section(main["follow_up"], S.FOLLOW_UP, problems, "follow_up")
    if follow_up["references"] not in ("always", "subject_match", "off"):
        problems.append(_at(main["follow_up"], "references",
                            "follow_up.references must be always, subject_match or off"))
    processing = S.section(main["processing"], S.PROCESSING, problems, "processing")
    escalation = S.section(main["escalation"], S.ESCALATION, problems, "escalation")

    data_dir = (conf_dir / main["data_dir"]).resolve()
    database_url = main["database"].replace("{data_dir}", str(data_dir))

    states = dict(S.DEFAULT_STATES)
    if main["states"] is not None:
        states = {}
        for item in main["states"]:
            st = S.section(item, {"name": S.Key(str, None, ""), "type": S.Key(str, None, "")},
                           problems, "states")
            if st["type"] not in S.STATE_TYPES:
                problems.append(_at(item, "type", f"state type must be one of {S.STATE_TYPES}"))
            if st["name"]:
                states[st["name"]] = st["type"]
    priorities = [str(p) for p in (main["priorities"] or S.DEFAULT_PRIORITIES)]
    if main["default_priority"] not in priorities:
        problems.append(_at(main_raw, "default_priority",
                            f"default_priority {main['default_priority']!r} is not a priority"))

    calendars = _calendars(read("calendars.yaml"), problems)
    agents_raw = read("agents.yaml")
    agents_file = S.section(agents_raw, S.AGENTS_FILE, problems, "agents.yaml")
    groups = {name: S.section(g, S.GROUP, problems, f"group {name!r}")["comment"]
              for name, g in agents_file["groups"].items()}
    roles = _roles(agents_file["roles"], groups, problems)
    agents = _agents(agents_file["agents"], roles, groups, problems)
    for login in agents_file["superusers"]:
        if login not in agents:
            problems.append(_at(agents_raw, "superusers", f"superuser {login!r} is not an agent"))

    queues_raw = read("queues.yaml")
    queues = _queues(queues_raw, groups, calendars, problems)
    default_queue = main["default_queue"]
    if "queues.yaml" in broken:
        queues = _Anything(queues)  # no cascade of "unknown queue" errors after a syntax error
    if queues and default_queue not in queues:
        problems.append(_at(main_raw, "default_queue", f"default_queue {default_queue!r} is not a "
                                                       f"queue in queues.yaml"))
    system_addresses = []
    for item in main["system_addresses"]:
        sa = S.section(item, S.SYSTEM_ADDRESS, problems, "system_addresses")
        if not sa["address"] or not _EMAIL.match(sa["address"]):
            problems.append(_at(item, "address", f"system address {sa['address']!r} is not an "
                                                 f"email address"))
            continue
        queue = sa["queue"] or default_queue
        if queue not in queues:
            problems.append(_at(item, "queue", f"unknown queue {queue!r}"))
        system_addresses.append(SystemAddress(sa["address"].lower(), sa["name"], queue))
    for q in queues.values():
        if q.follow_up_state not in states:
            problems.append(Problem(str(conf_dir / "queues.yaml"), 0,
                                    f"queue {q.name!r}: follow_up_state {q.follow_up_state!r} "
                                    f"is not a state"))

    raw = {k: main[k] for k in ("listeners", "mail_accounts", "outbound", "prefilters",
                                "agent_auth")}
    raw["_main"] = main_raw
    config = Config(
        dir=conf_dir, database_url=database_url, data_dir=data_dir, fqdn=main["fqdn"],
        default_queue=default_queue, ticket_number=tn, follow_up=follow_up,
        processing=processing, escalation=escalation, queues=queues, groups=groups,
        roles=roles, agents=agents,
        direct_group_rights=agents_file["direct_group_rights"],
        superusers=list(agents_file["superusers"]), system_addresses=system_addresses,
        states=states, priorities=priorities, default_priority=main["default_priority"],
        calendars=calendars, raw=raw, files=files)
    for part in sections:
        part.load(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def fingerprint(conf_dir: str | Path) -> tuple:
    """What the files under conf/ look like now (name, size, mtime): the daemon reloads when
    this changes, the same way as on SIGHUP."""
    root = Path(conf_dir)
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out)


class _Anything(dict):
    """Stands in for a section that failed to parse: every name counts as known."""

    def __contains__(self, key) -> bool:
        return True

    def __bool__(self) -> bool:
        return False


def _at(mapping, key, message) -> Problem:
    if isinstance(mapping, LineDict):
        return Problem(mapping.file, mapping.line_of(key), message)
    return Problem(getattr(mapping, "file", "?"), getattr(mapping, "line", 0), message)


def _calendars(raw, problems):
    from gateway.sla import calendars as cal_mod

    calendars = {}
    if raw is None:
        return _default_calendar()
    if not isinstance(raw, dict):
        problems.append(Problem(getattr(raw, "file", "calendars.yaml"), 1,
                                "calendars.yaml must map calendar names to settings"))
        return {}
    for name, data in raw.items():
        try:
            calendars[str(name)] = cal_mod.Calendar.from_config(str(name), data or {})
        except ValueError as exc:
            line = data.line if isinstance(data, LineDict) else raw.line_of(name)
            problems.append(Problem(raw.file, line, f"calendar {name!r}: {exc}"))
    if "default" not in calendars and not any(p.message.startswith("calendar 'default'")
                                              for p in problems):
        problems.append(Problem(raw.file, 1, "calendars.yaml needs a calendar named 'default'"))
    return calendars


def _default_calendar():
    from gateway.sla.calendars import Calendar

    week = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return {"default": Calendar.from_config("default", {"timezone": "UTC", "working_hours": week})}


def _rights(value, where, mapping, key, problems) -> frozenset[str]:
    rights = [value] if isinstance(value, str) else list(value or [])
    bad = [r for r in rights if r not in S.RIGHTS]
    if bad:
        problems.append(_at(mapping, key, f"{where}: unknown right(s) {bad}; rights are "
                                          f"{', '.join(S.RIGHTS)}"))
    return frozenset(r for r in rights if r in S.RIGHTS)


def _roles(raw, groups, problems):
    roles = {}
    for name, data in raw.items():
        role = S.section(data, S.ROLE, problems, f"role {name!r}")
        rights = {}
        for group, value in role["groups"].items():
            if group not in groups:
                problems.append(_at(role["groups"], group, f"role {name!r}: unknown group {group!r}"))
            rights[group] = _rights(value, f"role {name!r}", role["groups"], group, problems)
        roles[name] = Role(name, rights)
    return roles


def _agents(raw, roles, groups, problems):
    agents = {}
    for login, data in raw.items():
        a = S.section(data, S.AGENT, problems, f"agent {login!r}")
        emails = [a["email"]] if isinstance(a["email"], str) else list(a["email"] or [])
        for e in emails:
            if not _EMAIL.match(str(e)):
                problems.append(_at(data, "email", f"agent {login!r}: {e!r} is not an address"))
        if not emails:
            problems.append(_at(raw, login, f"agent {login!r} needs an email"))
        for r in a["roles"]:
            if r not in roles:
                problems.append(_at(data, "roles", f"agent {login!r}: unknown role {r!r}"))
        direct = {}
        for group, value in a["groups"].items():
            if group not in groups:
                problems.append(_at(a["groups"], group, f"agent {login!r}: unknown group {group!r}"))
            direct[group] = _rights(value, f"agent {login!r}", a["groups"], group, problems)
        agents[str(login)] = Agent(str(login), a["name"], [str(e).lower() for e in emails],
                                   [r for r in a["roles"] if r in roles], direct, a["valid"],
                                   {str(k): bool(v) for k, v in a["notifications"].items()})
    return agents


def _queues(raw, groups, calendars, problems):
    from gateway.sla.deadlines import EscalationTimes

    queues: dict[str, Queue] = {}
    if raw is None:
        return queues
    body = raw.get("queues", raw) if isinstance(raw, dict) else raw
    if not isinstance(body, dict):
        problems.append(Problem(getattr(raw, "file", "queues.yaml"), 1,
                                "queues.yaml must map queue names to settings"))
        return queues
    for name, data in body.items():
        name = str(name)
        q = S.section(data, S.QUEUE, problems, f"queue {name!r}")
        where = data if isinstance(data, LineDict) else body
        if q["group"] and q["group"] not in groups:
            problems.append(_at(where, "group", f"queue {name!r}: unknown group {q['group']!r}"))
        if q["calendar"] not in calendars and calendars:
            problems.append(_at(where, "calendar",
                                f"queue {name!r}: unknown calendar {q['calendar']!r}"))
        if q["follow_up"] not in S.FOLLOW_UP_OPTIONS:
            problems.append(_at(where, "follow_up", f"queue {name!r}: follow_up must be one of "
                                                    f"{', '.join(S.FOLLOW_UP_OPTIONS)}"))
        for kind in q["auto_responses"]:
            if kind not in S.AUTO_RESPONSE_TYPES:
                problems.append(_at(q["auto_responses"], kind,
                                    f"queue {name!r}: unknown auto-response type {kind!r} "
                                    f"(types: {', '.join(S.AUTO_RESPONSE_TYPES)})"))
        try:
            escalation = EscalationTimes.from_config(q["escalation"] or {})
        except ValueError as exc:
            problems.append(_at(where, "escalation", f"queue {name!r}: escalation: {exc}"))
            escalation = EscalationTimes()
        queues[name] = Queue(
            name=name, group=q["group"], calendar=q["calendar"], escalation=escalation,
            follow_up=q["follow_up"], follow_up_state=q["follow_up_state"],
            lock_after_follow_up=q["lock_after_follow_up"], unlock_timeout=q["unlock_timeout"],
            system_address=q["system_address"],
            auto_responses={str(k): str(v) for k, v in q["auto_responses"].items()},
            salutation=q["salutation"], signature=q["signature"], comment=q["comment"])
    for q in queues.values():
        if q.parent and q.parent not in queues:
            problems.append(_at(body, q.name, f"queue {q.name!r}: parent queue {q.parent!r} "
                                              f"is not defined"))
    return queues
