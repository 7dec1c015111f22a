"""The kinds of part the composition root (``gateway/app.py``) assembles, as small units.

Each part has a ``name``; the root puts them in ordered tuples (``Parts``) and refuses a
duplicate name at start-up. The gateway core only ever sees these shapes; the units
themselves live in ``filters/`` (pre-filters, filter config) and ``notifier/`` (hooks,
message-ID lookups, jobs, config), so the core never imports those packages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.config.section import ConfigSection
from gateway.ingest.source import SourceKind


@dataclass(frozen=True)
class Prefilter:
    """A built-in check run before the admin's postmaster filters.

    ``check(mail, envelope, settings, config) -> Verdict`` gets its own settings
    (``prefilters.<name>`` in ticketgate.yaml, ``enabled`` included) and never writes.
    ``settings`` declares its keys besides ``enabled`` (gateway.config.schema.Key);
    ``silences_auto_response``: a hit means no auto-response goes out;
    ``silences_notifications(data)``: a hit with this verdict data means no agent
    notification; ``validate(settings, config)`` returns (key, message) problems that need
    the rest of the config (e.g. a queue name)."""

    name: str
    check: Callable[..., Any]
    doc: str = ""
    settings: dict = field(default_factory=dict)
    silences_auto_response: bool = False
    silences_notifications: Callable[[dict], bool] = lambda data: False
    validate: Callable[[dict, Any], list] = lambda settings, config: []


@dataclass(frozen=True)
class AfterApply:
    """``run(pipeline, session, decision, ticket, article)`` in the mail's transaction."""

    name: str
    run: Callable[..., None]


@dataclass(frozen=True)
class MessageIdLookup:
    """``find(session, message_id) -> Ticket | None`` for Message-IDs of ours that are not
    articles (e.g. notifications in the outbound queue)."""

    name: str
    find: Callable[..., Any]


@dataclass(frozen=True)
class Job:
    """A time-driven job of the daemon (and of ``ticketgate work``): ``run(app)`` in a
    worker thread every ``seconds``."""

    name: str
    run: Callable[..., None]
    seconds: float


class StartupError(Exception):
    """The parts do not fit together (a name given twice): a programming error."""


@dataclass(frozen=True)
class Parts:
    sections: tuple[ConfigSection, ...] = ()
    prefilters: tuple[Prefilter, ...] = ()
    after_apply: tuple[AfterApply, ...] = ()
    message_id_lookups: tuple[MessageIdLookup, ...] = ()
    jobs: tuple[Job, ...] = ()
    sources: tuple[SourceKind, ...] = ()

    def __post_init__(self):
        for kind in ("sections", "prefilters", "after_apply", "message_id_lookups", "jobs",
                     "sources"):
            seen: set[str] = set()
            for part in getattr(self, kind):
                if part.name in seen:
                    raise StartupError(f"{kind}: {part.name!r} is given twice")
                seen.add(part.name)

    def names(self, kind: str) -> list[str]:
        return [part.name for part in getattr(self, kind)]
