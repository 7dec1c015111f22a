"""What every way of getting mail in looks like to the daemon: an ``IngestSource``, made by
its ``SourceKind`` from the loaded config. To add a way (say, a maildir watcher): a module
with a class that has these four methods and a ``SourceKind``, and one entry in
``PARTS.sources`` (gateway/app.py). Sources only turn bytes into accepted inbound rows
(gateway.intake); they never touch tickets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


class IngestSource(Protocol):
    name: str                   # e.g. "smtp:mx", "imap:support" (the mail's source)
    poll_every: float | None    # seconds between wake() calls the daemon schedules, or None

    async def start(self) -> None: ...
    async def stop(self, grace: float) -> None: ...
    def wake(self) -> None: ...
    def status(self) -> dict: ...


@dataclass(frozen=True)
class SourceContext:
    """What the daemon hands a source kind: the group committer (SMTP/LMTP commit in
    batches), the current config and store (they change on reload), and the callback that
    wakes the inbound worker after a commit (from any thread)."""

    committer: object
    config_of: Callable
    store_of: Callable
    on_commit: Callable


@dataclass(frozen=True)
class SourceKind:
    """``build(config, context) -> [IngestSource]``, one per configured listener/account.
    ``status_key`` names its list in the daemon's status; ``on_reload``: "restart" (stop the
    old sources, start new ones) or "keep" (keep the sockets; a changed address needs a
    restart, which is logged)."""

    name: str
    build: Callable[..., list]
    status_key: str
    on_reload: str = "restart"
    identity: Callable[[object], tuple] = lambda source: (source.name,)
