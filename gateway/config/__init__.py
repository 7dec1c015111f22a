"""Configuration: load and validate conf/ (see loader.py), typed model in model.py, the key
tables and how they are checked in schema.py and core_keys.py, ``--defaults`` in defaults.py.

This package imports no application code: the parts of conf/ that other packages own are
``ConfigSection`` units that ``gateway.app`` passes to ``load_config``."""
from gateway.config.loader import load_config
from gateway.config.model import Config
from gateway.config.section import ConfigSection
from gateway.config.yamlload import ConfigError, Problem

__all__ = ["Config", "ConfigError", "ConfigSection", "Problem", "load_config"]
