"""Wiring: load the configuration, open the store, build the pipeline. Used by the CLI, the
daemon and tests, so all three run the same thing."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from gateway.config import Config, load_config
from gateway.pipeline import Pipeline
from gateway.store.db import Store, open_store

# Packages that add parts of their own to conf/ and the pipeline (config loaders and
# after-apply hooks register themselves when imported). Missing ones are simply skipped.
PLUGINS = ("gateway.sla", "gateway.daemon_config", "filters.engine", "notifier")


def load_plugins() -> None:
    for name in PLUGINS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(str(exc.name)):
                raise


@dataclass
class App:
    config: Config
    store: Store
    pipeline: Pipeline

    def reload(self, conf_dir=None) -> Config:
        """Load a new config; swap it in only if it is valid (ConfigError otherwise)."""
        config = load_config(conf_dir or self.config.dir)
        self.config, self.pipeline = config, Pipeline(config)
        return config


def open_app(conf_dir, *, database: str | None = None, migrate: bool = True) -> App:
    load_plugins()
    config = load_config(conf_dir)
    if database:
        config.database_url = database
    store = open_store(config.database_url, run_migrations=migrate)
    return App(config, store, Pipeline(config))
