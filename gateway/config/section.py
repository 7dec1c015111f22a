"""One loadable part of conf/: the unit ``gateway.config.load_config`` runs, in order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ConfigSection:
    """``load(config, problems)`` reads one part of conf/ (a key of ticketgate.yaml or a
    file/folder of its own), adds the checks that need the rest of the config and stores
    the result in its field of ``config`` (gateway/config/model.py).

    ``keys`` declares what it reads: ``(file, table)`` pairs, where table is
    ``{key: Key}`` (the file's top-level keys) or one ``Key`` (the whole file is a list or
    a mapping of named entries). Keys declared for ``ticketgate.yaml`` are checked by the
    loader with the rest of that file and read from ``config.settings[key]``; a section
    with a file of its own checks it with ``schema.section``. ``check-config --defaults``
    prints them all."""

    name: str
    load: Callable[..., None]
    keys: tuple = field(default_factory=tuple)
