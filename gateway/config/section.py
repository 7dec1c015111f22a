"""One loadable part of conf/: the unit ``gateway.config.load_config`` runs, in order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ConfigSection:
    """``load(config, problems)`` reads and validates one part of conf/ (a key of
    ticketgate.yaml or a file/folder of its own) and stores the result on ``config``
    (attribute ``name``). ``keys`` lists ``(title, {key: Key})`` tables for
    ``check-config --defaults``."""

    name: str
    load: Callable[..., None]
    keys: tuple = field(default_factory=tuple)
