"""The loaded configuration as plain, typed objects (built by ``gateway.config.loader``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Queue:
    name: str
    group: str | None
    calendar: str = "default"
    escalation: Any = None            # gateway.sla.deadlines.EscalationTimes
    follow_up: str = "possible"       # possible | reject | new_ticket
    follow_up_state: str = "open"
    lock_after_follow_up: bool = False
    unlock_timeout: int = 0
    system_address: str | None = None
    auto_responses: dict[str, str] = field(default_factory=dict)
    salutation: str = ""
    signature: str = ""
    comment: str = ""

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
    calendars: dict[str, Any]         # name -> gateway.sla.calendars.Calendar
    # Set by the ConfigSection units gateway.app passes to load_config (one field each):
    filters: list = field(default_factory=list)     # filters.engine rules, in order
    filter_engine: Any = None                       # filters.engine.FilterEngine
    prefilters: dict[str, dict] = field(default_factory=dict)  # name -> its settings
    templates: dict[str, Any] = field(default_factory=dict)    # notifier.templates.Template
    outbound: dict = field(default_factory=dict)    # notifier.outbound.config OUTBOUND settings
    agent_auth: Any = None                          # gateway.agents.identity.AuthSettings
    acl: Any = None                                 # gateway.agents.acl.AclEngine
    slas: list = field(default_factory=list)        # gateway.sla.slas.SLA, in order
    raw: dict = field(default_factory=dict)          # other sections, validated by their owners
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
