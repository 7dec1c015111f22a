"""Mail commands: the ``#commands`` at the top of an agent's mail (not the ``ticketgate`` CLI
sub-commands, which live in gateway/cli/). Parse them, check rights and ACLs (decide, no
writes), and apply the accepted ones (in the mail's transaction).

    #state closed successful      #queue Hardware::Printer     #owner tmoore
    #responsible nsmith           #priority 4 high             #lock / #unlock
    #pending 2026-12-01 09:00     #note                        #time 15
    #field Branch=101

Commands are the lines at the top of the body, before the first line of text (blank lines
between them are allowed). Each is checked on its own; a refused or unknown one is answered to
the agent and the rest still goes through. Rights (agents.yaml) on the ticket queue's group:
see MAIL_COMMANDS below and docs/agents.md. To add a command: its argument parser and one row
in MAIL_COMMANDS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from gateway import tickets
from gateway.agents.acl import ticket_attributes, user_attributes
from gateway.agents.quoting import customer_text
from gateway.sla.clock import calendar_for

_LINE = re.compile(r"^#([A-Za-z][A-Za-z_-]*)(?:[ \t]+(.*?))?[ \t]*$")
MAX_COMMANDS = 30


@dataclass
class Command:
    name: str
    arg: str
    line: int          # 1-based line in the body
    text: str


@dataclass
class CommandVerdict:
    command: Command
    ok: bool
    reason: str
    changes: list[tuple[str, object]] = field(default_factory=list)  # (ticket field, value)

    def describe(self) -> str:
        return f"{self.command.text}: {'accepted' if self.ok else 'refused'} ({self.reason})"


def parse(body: str) -> tuple[list[Command], str]:
    """The commands at the top of ``body`` and the body without them."""
    lines = (body or "").splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines) and len(commands) < MAX_COMMANDS:
        stripped = lines[i].strip()
        if not stripped:
            i += 1
            continue
        m = _LINE.match(stripped)
        if not m:
            break
        commands.append(Command(m.group(1).lower(), (m.group(2) or "").strip(), i + 1,
                                stripped))
        i += 1
    rest = "\n".join(lines[i:]).strip("\n")
    return commands, rest


# ---- checking -------------------------------------------------------------------------------
@dataclass
class Context:
    config: object
    agent: object
    ticket: object
    acl: object
    overrides: dict = field(default_factory=dict)   # changes accepted so far in this mail

    def group(self, queue_name=None):
        q = self.config.queues.get(queue_name or self.current("queue"))
        return q.group if q else None

    def current(self, key):
        return self.overrides.get(key, getattr(self.ticket, key, None))

    def rights(self, queue_name=None):
        return self.config.agent_rights(self.agent, self.group(queue_name))

    def acl_check(self, key, value):
        if self.acl is None:
            return True, "no ACLs"
        users = user_attributes(self.config, self.agent)
        current = {**ticket_attributes(self.config, self.ticket, self.overrides), **users}
        database = {**ticket_attributes(self.config, self.ticket), **users}
        v = self.acl.check(self.agent.login, current, database, key, str(value))
        return v.ok, v.reason


def check_all(config, agent, ticket, commands: list[Command], acl=None) -> list[CommandVerdict]:
    """One verdict per command, in order; later commands see the accepted earlier ones."""
    ctx = Context(config, agent, ticket, acl)
    verdicts = []
    for cmd in commands:
        verdict = check(ctx, cmd)
        if verdict.ok:
            for key, value in verdict.changes:
                ctx.overrides[key] = value
        verdicts.append(verdict)
    return verdicts


def check(ctx: Context, cmd: Command) -> CommandVerdict:
    row = BY_NAME.get(cmd.name) if cmd.name != REPLY.name else REPLY
    if row is None:
        return CommandVerdict(cmd, False, f"unknown command #{cmd.name} (commands: "
                                          f"{', '.join('#' + n for n in BY_NAME)})")
    try:
        changes = row.parse(ctx, cmd.arg)
    except ValueError as exc:
        return CommandVerdict(cmd, False, str(exc))
    right = row.right
    have = ctx.rights()
    group = ctx.group()
    if right not in have:
        return CommandVerdict(cmd, False, f"{ctx.agent.login} lacks the {right!r} right on "
                                          f"group {group!r} of queue {ctx.current('queue')!r}")
    if cmd.name == "queue":
        target = dict(changes)["queue"]
        if "move_into" not in ctx.rights(target):
            return CommandVerdict(cmd, False, f"{ctx.agent.login} lacks the 'move_into' right "
                                              f"on group {ctx.group(target)!r} of queue "
                                              f"{target!r}")
    actions = [row.acl_action]
    for key, value in changes:
        if key == "state" and ctx.config.is_closed(value):
            actions.append("close")
    for action in actions:
        ok, why = ctx.acl_check("action", action)
        if not ok:
            return CommandVerdict(cmd, False, f"action {action!r} not allowed: {why}")
    for key, value in changes:
        acl_key = {"queue": "queue", "state": "state", "priority": "priority",
                   "owner": "owner", "responsible": "responsible"}.get(key)
        if key.startswith("dynamic_field."):
            acl_key = key
        if acl_key is None:
            continue
        ok, why = ctx.acl_check(acl_key, value)
        if not ok:
            return CommandVerdict(cmd, False, f"{acl_key} {value!r} not allowed: {why}")
    return CommandVerdict(cmd, True, f"{right!r} right on group {group!r}", changes)


# ---- argument parsers: return the ticket changes, raise ValueError with the reason ------------
def _state(ctx, arg):
    if not arg:
        raise ValueError("#state needs a state name")
    states = ctx.config.states
    match = next((s for s in states if s.lower() == arg.lower()), None)
    if match is None:
        raise ValueError(f"unknown state {arg!r} (states: {', '.join(states)})")
    if ctx.config.state_type(match) in ("merged", "removed"):
        raise ValueError(f"state {match!r} cannot be set by mail")
    if ctx.config.state_type(match).startswith("pending"):
        raise ValueError(f"state {match!r} needs a time: use #pending DATE TIME [{match}]")
    return [("state", match)]


def _queue(ctx, arg):
    match = next((q for q in ctx.config.queues if q.lower() == arg.lower()), None)
    if match is None:
        raise ValueError(f"unknown queue {arg!r}")
    if match == ctx.current("queue"):
        raise ValueError(f"the ticket is already in queue {match!r}")
    return [("queue", match)]


def _agent(ctx, arg, role):
    config = ctx.config
    agent = config.agents.get(arg) or (config.agent_by_email(arg) if "@" in arg else None)
    if agent is None or not agent.valid:
        raise ValueError(f"no valid agent {arg!r}")
    if "owner" not in config.agent_rights(agent, ctx.group()):
        raise ValueError(f"agent {agent.login} has no 'owner' right on group {ctx.group()!r} "
                         f"and cannot be {role}")
    return agent.login


def _owner(ctx, arg):
    return [("owner", _agent(ctx, arg, "owner"))]


def _responsible(ctx, arg):
    return [("responsible", _agent(ctx, arg, "responsible"))]


def _priority(ctx, arg):
    wanted = arg.strip().lower()
    for p in ctx.config.priorities:
        number, _, name = p.partition(" ")
        if wanted in (p.lower(), number.lower(), name.lower()):
            return [("priority", p)]
    raise ValueError(f"unknown priority {arg!r} (priorities: "
                     f"{', '.join(ctx.config.priorities)})")


def _lock(ctx, arg):
    changes = [("locked", True)]
    if not ctx.current("owner"):
        changes.append(("owner", ctx.agent.login))
    return changes


def _unlock(ctx, arg):
    return [("locked", False)]


def _pending(ctx, arg):
    m = re.match(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}:\d{2}))?\s*(.*)$", arg)
    if not m:
        raise ValueError("#pending needs a date: #pending YYYY-MM-DD [HH:MM] [pending state]")
    try:
        naive = datetime.strptime(f"{m.group(1)} {m.group(2) or '00:00'}", "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise ValueError(f"bad pending date {arg!r}: {exc}") from None
    calendar = calendar_for(ctx.config, ctx.current("queue"))
    tz = getattr(calendar, "tz", None) or ZoneInfo("UTC")
    when = naive.replace(tzinfo=tz).astimezone(timezone.utc)
    state = m.group(3).strip() or "pending reminder"
    match = next((s for s in ctx.config.states if s.lower() == state.lower()), None)
    if match is None or not ctx.config.state_type(match).startswith("pending"):
        raise ValueError(f"{state!r} is not a pending state")
    if when <= datetime.now(timezone.utc):
        raise ValueError(f"pending time {naive:%Y-%m-%d %H:%M} ({tz}) is in the past")
    return [("state", match), ("pending_until", when)]


def _note(ctx, arg):
    return [("internal", True)]


def _time(ctx, arg):
    try:
        minutes = float(arg.replace(",", "."))
    except ValueError:
        raise ValueError(f"#time needs minutes, got {arg!r}") from None
    if not 0 < minutes <= 10000:
        raise ValueError(f"#time {arg}: minutes must be between 0 and 10000")
    return [("time_units", minutes)]


def _field(ctx, arg):
    m = re.match(r"^([A-Za-z][\w-]{0,99})\s*=\s*(.*)$", arg)
    if not m:
        raise ValueError("#field needs NAME=VALUE")
    return [(f"dynamic_field.{m.group(1)}", m.group(2).strip())]


@dataclass(frozen=True)
class MailCommand:
    """One ``#command``: the right it needs on the ticket queue's group (``#queue`` also needs
    move_into on the target), the ACL action it is checked as (a change to a closed state is
    also checked as 'close'), and its argument parser."""

    name: str
    right: str
    acl_action: str
    parse: Callable[[Context, str], list]


MAIL_COMMANDS = (
    MailCommand("state", "rw", "state", _state),
    MailCommand("queue", "rw", "move", _queue),
    MailCommand("owner", "owner", "owner", _owner),
    MailCommand("responsible", "owner", "responsible", _responsible),
    MailCommand("priority", "priority", "priority", _priority),
    MailCommand("lock", "rw", "lock", _lock),
    MailCommand("unlock", "rw", "lock", _unlock),
    MailCommand("pending", "rw", "pending", _pending),
    MailCommand("note", "note", "note", _note),
    MailCommand("time", "note", "time", _time),
    MailCommand("field", "rw", "field", _field),
)
BY_NAME = {row.name: row for row in MAIL_COMMANDS}
assert len(BY_NAME) == len(MAIL_COMMANDS), "a mail command is listed twice"
# Writing to the customer at all is checked like a command of its own.
REPLY = MailCommand("reply", "rw", "reply", lambda ctx, arg: [])


# ---- applying (inside the mail's transaction) -----------------------------------------------
def apply_changes(session, ticket, article, verdicts: list[CommandVerdict], agent_login) -> None:
    for verdict in verdicts:
        reason = f"#{verdict.command.name} by {agent_login}"
        if not verdict.ok:
            tickets.add_history(session, ticket, "AgentCommandRefused",
                                f"{verdict.command.text}: refused ({verdict.reason})", article,
                                agent=agent_login)
            continue
        for key, value in verdict.changes:
            if key.startswith("dynamic_field."):
                name = key.split(".", 1)[1]
                old = (ticket.dynamic_fields or {}).get(name)
                ticket.dynamic_fields = {**(ticket.dynamic_fields or {}), name: value}
                tickets.add_history(session, ticket, "TicketDynamicFieldUpdate",
                                    f"{name}: {old!r} -> {value!r} ({reason})", article,
                                    field=name, old=old, new=value)
            elif key == "time_units":
                article.flags = {**(article.flags or {}), "time_units": value}
                tickets.add_history(session, ticket, "TimeAccounting",
                                    f"{value:g} minutes ({reason})", article, minutes=value)
            elif key == "internal":
                article.internal = True
            elif key == "pending_until":
                old = ticket.pending_until
                ticket.pending_until = value
                tickets.add_history(session, ticket, "SetPendingTime",
                                    f"pending until {value:%Y-%m-%d %H:%M} UTC ({reason})",
                                    article, old=old.isoformat() if old else None,
                                    new=value.isoformat())
            else:
                tickets.set_field(session, ticket, key, value, reason, article)
                if key == "state" and ticket.pending_until is not None and \
                        not dict(verdict.changes).get("pending_until"):
                    ticket.pending_until = None     # no longer pending: the time is void


# ---- the pipeline step's decision -----------------------------------------------------------
@dataclass
class AgentWork:
    """What an agent's mail asks for, decided (gateway/routing.py) and then applied."""
    commands: list[Command]
    verdicts: list[CommandVerdict]
    text: str                  # what the customer would get (commands and quotes stripped)
    send: bool                 # send the article to the customer?
    why_not_sent: str = ""
    reply_refused: str = ""    # the agent lacks the right to write to the customer
    applied: bool = False      # it acts on the ticket: remembered against replays


    @property
    def refused(self) -> list[CommandVerdict]:
        return [v for v in self.verdicts if not v.ok]


# auto_submitted pre-filter kinds that are no sign of a machine: Exchange puts
# X-Auto-Response-Suppress on people's mail too, and an agent may write through a list
HUMAN_KINDS = ("suppress", "list")


def machine_made(flags: dict) -> str | None:
    """Why the auto_submitted pre-filter's verdict (``decision.flags``) says a responder wrote
    this mail, or None."""
    verdict = flags.get("auto_submitted")
    if not verdict:
        return None
    if verdict.get("kind") in HUMAN_KINDS and not verdict.get("out_of_office"):
        return None
    return f"{verdict.get('kind')}: {verdict.get('reason', '')}".rstrip(": ")


def decide_work(pipeline, decision, replay: str | None = None) -> AgentWork:
    """What the agent's mail does; ``replay``: why it must not act (gateway/routing.py)."""
    config = pipeline.config
    agent = config.agents[decision.agent]
    commands, rest = parse(decision.mail.body)
    ticket = decision.ticket if decision.action == "follow_up" else None
    text = customer_text(rest)
    auto = machine_made(decision.flags)
    if auto is not None:
        # a vacation responder answering a notification: no reply, no #commands, and no
        # answer about them either (each would be one more mail for the responder)
        why = f"auto-submitted mail ({auto}): an internal note, no commands run"
        work = AgentWork(commands, [], text, False, why)
        decision.note("command", f"{len(commands)} command line(s) ignored: {why}"
                      if commands else why)
    elif replay is not None:
        why = f"{replay}: an internal note, no commands run"
        work = AgentWork(commands, [], text, False, why)
        decision.note("command", why)
    elif ticket is None:
        work = AgentWork(commands, [CommandVerdict(c, False, "commands work only in a reply to "
                                                             "an existing ticket")
                                    for c in commands], text, False,
                         "not a reply to an existing ticket")
    else:
        acl = config.acl
        reply = check(Context(config, agent, ticket, acl), Command("reply", "", 0, "(reply)"))
        verdicts = check_all(config, agent, ticket, commands, acl)
        internal = any(v.ok and v.command.name == "note" for v in verdicts)
        why = ("#note: internal" if internal else
               "" if reply.ok else f"reply to the customer refused: {reply.reason}")
        if not why and not text.strip():
            why = "no text for the customer (only commands)"
        work = AgentWork(commands, verdicts, text, not why, why,
                         "" if reply.ok or internal else why, applied=True)
    for v in work.verdicts:
        decision.note("command", v.describe(), command=v.command.name, ok=v.ok)
    decision.note("reply", "to the customer: " + ("to be sent" if work.send else
                                                  f"not sent ({work.why_not_sent})"))
    decision.agent_work = work
    return work
