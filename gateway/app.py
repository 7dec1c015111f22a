"""The composition root: the one place that knows every part of ticketgate and puts them
together, explicitly and in order. The CLI, the daemon and the tests all start here, so all
three run the same thing.

``PARTS`` holds, in order: the sections of conf/ (the gateway's own, then those ``filters``
and ``notifier`` export), the pre-filters, the after-apply hooks, the message-ID lookups,
the scheduled jobs and the ingest source kinds. A name given twice is a start-up error
(gateway.parts.Parts). Nothing is registered by importing a module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import filters
import notifier
from gateway import config as config_pkg
from gateway.agents import acl_config, identity
from gateway.ingest import config as ingest_config
from gateway.ingest import kinds as ingest
from gateway.config import Config
from gateway.parts import Parts
from gateway.pipeline import Pipeline
from gateway.sla import calendars, slas
from gateway.store.db import Store, open_store

PARTS = Parts(
    # calendars first: the queues' and SLAs' calendars are checked against them
    sections=(calendars.SECTION, identity.AGENT_AUTH_SECTION, acl_config.SECTION, slas.SECTION,
              ingest_config.SECTION, *filters.CONFIG_SECTIONS, *notifier.CONFIG_SECTIONS),
    prefilters=filters.PREFILTERS,
    after_apply=notifier.AFTER_APPLY,
    message_id_lookups=notifier.MESSAGE_ID_LOOKUPS,
    jobs=notifier.JOBS,
    sources=ingest.SOURCE_KINDS,
)


def load_config(conf_dir: str | Path, parts: Parts = PARTS) -> Config:
    """Load and validate all of conf/ (every section of every package); ConfigError lists
    every problem with file and line."""
    return config_pkg.load_config(conf_dir, parts.sections)


@dataclass
class App:
    config: Config
    store: Store
    pipeline: Pipeline
    parts: Parts = PARTS

    def reload(self, conf_dir=None) -> Config:
        """Load a new config; swap it in only if it is valid (ConfigError otherwise)."""
        config = load_config(conf_dir or self.config.dir, self.parts)
        self.config, self.pipeline = config, Pipeline(config, self.parts)
        return config


def open_app(conf_dir, *, database: str | None = None, migrate: bool = True,
             parts: Parts = PARTS) -> App:
    config = load_config(conf_dir, parts)
    if database:
        config.database_url = database
    store = open_store(config.database_url, run_migrations=migrate)
    return App(config, store, Pipeline(config, parts), parts)
