"""Load and validate a whole conf/ directory. Every problem names its file and line.

``load_config(dir)`` returns a Config or raises ConfigError listing *all* problems found,
like ``nginx -t``. Nothing is half-applied: callers swap configs only after a clean load.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.config import core_keys as S
from gateway.config.schema import Key, email, entries, section
from gateway.config.section import ConfigSection
from gateway.config.model import Agent, Config, EscalationTimes, Queue, Role, SystemAddress
from gateway.config.yamlload import ConfigError, LineDict, Problem, load_yaml


def _optional(path: Path, problems: list[Problem], display: str):
    if not path.exists():
        return None
    try:
        return load_yaml(path, display)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def main_keys(sections: Sequence[ConfigSection] = ()) -> dict[str, Key]:
    """The keys of ticketgate.yaml: the core's, each replaced by the Key a section declares
    for it (with the keys inside), in the core's order; a section may add keys too."""
    keys = dict(S.MAIN)
    for part in sections:
        for file, table in part.keys:
            if file == "ticketgate.yaml":
                keys.update(table)
    return keys


def load_config(conf_dir: str | Path, sections: Sequence[ConfigSection] = ()) -> Config:
    """The core of conf/ (ticketgate.yaml, agents, queues), then each of ``sections`` in
    order. ``gateway.app.load_config`` passes every section of the product; this module
    imports none of them."""
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
    main = section(main_raw, main_keys(sections), problems, "ticketgate.yaml")

    data_dir = (conf_dir / main["data_dir"]).resolve()
    database_url = main["database"].replace("{data_dir}", str(data_dir))

    states = dict(S.DEFAULT_STATES)
    if main["states"] is not None:
        states = {st["name"]: st["type"] for st in main["states"] if st["name"] and st["type"]}
    priorities = [str(p) for p in (main["priorities"] or S.DEFAULT_PRIORITIES)]
    if main["default_priority"] not in priorities:
        problems.append(_at(main, "default_priority",
                            f"default_priority {main['default_priority']!r} is not a priority"))

    agents_raw = read("agents.yaml")
    agents_file = section(agents_raw, S.AGENTS_FILE, problems, "agents.yaml")
    groups = {name: g["comment"] for name, g in agents_file["groups"].items()}
    roles = _roles(agents_file["roles"], groups, problems)
    agents = _agents(agents_file["agents"], roles, groups, problems)
    for login in agents_file["superusers"]:
        if login not in agents:
            problems.append(_at(agents_file, "superusers",
                                f"superuser {login!r} is not an agent"))

    queues = _queues(read("queues.yaml"), groups, problems)
    default_queue = main["default_queue"]
    if "queues.yaml" in broken:
        queues = _Anything(queues)  # no cascade of "unknown queue" errors after a syntax error
    if queues and default_queue not in queues:
        problems.append(_at(main, "default_queue", f"default_queue {default_queue!r} is not a "
                                                   f"queue in queues.yaml"))
    system_addresses = []
    for sa in main["system_addresses"]:
        if not sa["address"]:
            continue    # reported: required, or not an email address
        queue = sa["queue"] or default_queue
        if queue not in queues:
            problems.append(_at(sa, "queue", f"unknown queue {queue!r}"))
        system_addresses.append(SystemAddress(sa["address"].lower(), sa["name"], queue))
    for q in queues.values():
        if q.follow_up_state not in states:
            problems.append(_at(q.source, "follow_up_state",
                                f"queue {q.name!r}: follow_up_state {q.follow_up_state!r} "
                                f"is not a state"))

    config = Config(
        dir=conf_dir, database_url=database_url, data_dir=data_dir, fqdn=main["fqdn"],
        default_queue=default_queue, ticket_number=main["ticket_number"],
        follow_up=main["follow_up"], processing=main["processing"],
        escalation=main["escalation"], queues=queues, groups=groups,
        roles=roles, agents=agents,
        direct_group_rights=agents_file["direct_group_rights"],
        superusers=list(agents_file["superusers"]), system_addresses=system_addresses,
        states=states, priorities=priorities, default_priority=main["default_priority"],
        settings=main, files=files)
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


def _rights(value, where, mapping, key, problems) -> frozenset[str]:
    rights = [value] if isinstance(value, str) else list(value or [])
    bad = [r for r in rights if r not in S.RIGHTS]
    if bad:
        problems.append(_at(mapping, key, f"{where}: unknown right(s) {bad}; rights are "
                                          f"{', '.join(S.RIGHTS)}"))
    return frozenset(r for r in rights if r in S.RIGHTS)


def _roles(checked, groups, problems):
    roles = {}
    for name, role in checked.items():
        rights = {}
        for group, value in role["groups"].items():
            if group not in groups:
                problems.append(_at(role["groups"], group, f"role {name!r}: unknown group {group!r}"))
            rights[group] = _rights(value, f"role {name!r}", role["groups"], group, problems)
        roles[name] = Role(name, rights)
    return roles


def _agents(checked, roles, groups, problems):
    agents = {}
    for login, a in checked.items():
        emails = [a["email"]] if isinstance(a["email"], str) else list(a["email"] or [])
        for e in emails:
            if email(str(e)):
                problems.append(_at(a, "email", f"agent {login!r}: {e!r} is not an address"))
        if not emails:
            problems.append(_at(checked, login, f"agent {login!r} needs an email"))
        for r in a["roles"]:
            if r not in roles:
                problems.append(_at(a, "roles", f"agent {login!r}: unknown role {r!r}"))
        direct = {}
        for group, value in a["groups"].items():
            if group not in groups:
                problems.append(_at(a["groups"], group, f"agent {login!r}: unknown group {group!r}"))
            direct[group] = _rights(value, f"agent {login!r}", a["groups"], group, problems)
        agents[str(login)] = Agent(str(login), a["name"], [str(e).lower() for e in emails],
                                   [r for r in a["roles"] if r in roles], direct, a["valid"],
                                   {str(k): bool(v) for k, v in a["notifications"].items()})
    return agents


def _queues(raw, groups, problems):
    """queues.yaml: ``queues:`` name -> settings (a file of only the names is read too)."""
    queues: dict[str, Queue] = {}
    if raw is None:
        return queues
    body = raw.get("queues", raw) if isinstance(raw, dict) else raw
    if not isinstance(body, dict):
        problems.append(Problem(getattr(raw, "file", "queues.yaml"), 1,
                                "queues.yaml must map queue names to settings"))
        return queues
    if body is not raw:
        checked = section(raw, S.QUEUES_FILE, problems, "queues.yaml")["queues"]
    else:
        checked = entries(body, S.QUEUES_FILE["queues"], problems, "queues")
    for name, q in checked.items():
        name = str(name)
        if q["group"] and q["group"] not in groups:
            problems.append(_at(q, "group", f"queue {name!r}: unknown group {q['group']!r}"))
        try:
            escalation = EscalationTimes(**q["escalation"])
        except ValueError as exc:
            problems.append(_at(q, "escalation", f"queue {name!r}: escalation: {exc}"))
            escalation = EscalationTimes()
        queues[name] = Queue(
            name=name, group=q["group"], calendar=q["calendar"], escalation=escalation,
            follow_up=q["follow_up"], follow_up_state=q["follow_up_state"],
            lock_after_follow_up=q["lock_after_follow_up"], unlock_timeout=q["unlock_timeout"],
            system_address=q["system_address"],
            auto_responses={k: v for k, v in q["auto_responses"].items() if v},
            salutation=q["salutation"], signature=q["signature"], comment=q["comment"],
            source=q)
    for q in queues.values():
        if q.parent and q.parent not in queues:
            problems.append(_at(checked, q.name, f"queue {q.name!r}: parent queue {q.parent!r} "
                                                 f"is not defined"))
    return queues
