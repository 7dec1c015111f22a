"""The loaded configuration as plain, typed objects (built by ``gateway.config.loader``)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.config.core_keys import ESCALATION_TIMES
from gateway.config.schema import fields_from


@fields_from(ESCALATION_TIMES, frozen=True)
class EscalationTimes:
    """Escalation times of a queue or an SLA (keys: schema.ESCALATION_TIMES). Times are
    working minutes (0 = off); ``*_notify`` is a percentage of that time (0 = no early
    warning). Building one with impossible values raises ValueError naming the key."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{f.name}: expected a whole number, got {v!r}")
            if v < 0:
                raise ValueError(f"{f.name}: must not be negative, got {v}")
            if f.name.endswith("_notify"):
                if v > 100:
                    raise ValueError(f"{f.name}: a percentage 0-100, got {v}")
                base = f.name[: -len("_notify")]
                if v and not getattr(self, base):
                    raise ValueError(f"{f.name}: set to {v}% but {base} is off (0)")

    @classmethod
    def from_config(cls, data: dict | None) -> "EscalationTimes":
        """Build from a plain mapping; missing or null keys mean 0 (off)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"escalation: expected a mapping, got {type(data).__name__}")
        for k in data:
            if k not in ESCALATION_TIMES:
                raise ValueError(f"{k}: unknown escalation key (allowed: "
                                 f"{', '.join(ESCALATION_TIMES)})")
        return cls(**{k: (0 if v is None else v) for k, v in data.items()})


@dataclass
class Queue:
    name: str
    group: str | None
    calendar: str = "default"
    escalation: EscalationTimes | None = None
    follow_up: str = "possible"       # possible | reject | new_ticket
    follow_up_state: str = "open"
    lock_after_follow_up: bool = False
    unlock_timeout: int = 0
    system_address: str | None = None
    auto_responses: dict[str, str] = field(default_factory=dict)
    salutation: str = ""
    signature: str = ""
    comment: str = ""
    source: Any = field(default=None, repr=False, compare=False)  # its checked queues.yaml entry

    @property
    def parent(self) -> str | None:
        return self.name.rsplit("::", 1)[0] if "::" in self.name else None


@dataclass
class Role:
    name: str
    groups: dict[str, frozenset[str]]


@dataclass
class Agent:
    login: str
    name: str
    emails: list[str]
    roles: list[str] = field(default_factory=list)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    valid: bool = True
    notifications: dict[str, bool] = field(default_factory=dict)


@dataclass
class SystemAddress:
    address: str
    name: str
    queue: str


@dataclass
class Config:
    dir: Path
    database_url: str
    data_dir: Path
    fqdn: str
    default_queue: str
    # The plain settings groups of ticketgate.yaml, every key present (schema.py tables):
    ticket_number: dict
    follow_up: dict
    processing: dict
    escalation: dict
    queues: dict[str, Queue]
    groups: dict[str, str]
    roles: dict[str, Role]
    agents: dict[str, Agent]
    direct_group_rights: bool
    superusers: list[str]
    system_addresses: list[SystemAddress]
    states: dict[str, str]            # state name -> state type
    priorities: list[str]
    default_priority: str
    # ticketgate.yaml as checked against every key the core and the sections declare:
    # sections read their part here and store what they make of it in their field below.
    settings: dict = field(default_factory=dict)
    # Set by the ConfigSection units gateway.app passes to load_config (one field each):
    calendars: dict[str, Any] = field(default_factory=dict)  # name -> gateway.sla.calendars.Calendar
    listeners: list = field(default_factory=list)   # gateway.ingest.config.ListenerConf
    mail_accounts: list = field(default_factory=list)  # gateway.ingest.config.AccountConf
    filters: list = field(default_factory=list)     # filters.engine rules, in order
    filter_engine: Any = None                       # filters.engine.FilterEngine
    prefilters: dict[str, dict] = field(default_factory=dict)  # name -> its settings
    templates: dict[str, Any] = field(default_factory=dict)    # notifier.templates.Template
    outbound: dict = field(default_factory=dict)    # notifier.outbound.config OUTBOUND settings
    agent_auth: Any = None                          # gateway.agents.identity.AuthSettings
    acl: Any = None                                 # gateway.agents.acl.AclEngine
    slas: list = field(default_factory=list)        # gateway.sla.slas.SLA, in order
    files: list[Path] = field(default_factory=list)  # every file read (for reload on change)

    # -- lookups used all over the pipeline --------------------------------------------------
    def agent_by_email(self, address: str) -> Agent | None:
        return self._agent_index().get(address.lower())

    def _agent_index(self) -> dict[str, Agent]:
        index = getattr(self, "_agents_by_email", None)
        if index is None:
            index = {e.lower(): a for a in self.agents.values() if a.valid for e in a.emails}
            self._agents_by_email = index
        return index

    def system_address(self, address: str) -> SystemAddress | None:
        address = address.lower()
        for sa in self.system_addresses:
            if sa.address.lower() == address:
                return sa
        return None

    def state_type(self, state: str) -> str:
        return self.states.get(state, "open")

    def is_closed(self, state: str) -> bool:
        """Closed in the follow-up sense (state type closed or removed): a mail to such a ticket
        follows the queue's ``follow_up`` option, and an agent setting it needs the close
        right. Not the escalation rule: ``gateway.sla.clock.stops_clock`` also stops the clock
        of merged tickets and, with ``escalation.suspend_pending``, of pending ones."""
        return self.state_type(state) in ("closed", "removed")

    def agent_rights(self, agent: Agent, group: str | None) -> frozenset[str]:
        """Rights an agent holds on a group, through roles (and direct rights when allowed)."""
        if group is None:
            return frozenset()
        rights: set[str] = set()
        for role in agent.roles:
            rights |= self.roles[role].groups.get(group, frozenset())
        if self.direct_group_rights:
            rights |= agent.groups.get(group, frozenset())
        if "rw" in rights:
            rights |= {"ro", "move_into", "create", "note", "owner", "priority"}
        return frozenset(rights)
