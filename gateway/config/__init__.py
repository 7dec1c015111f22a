"""Configuration: load and validate conf/ (see loader.py), typed model in model.py."""
from gateway.config.loader import load_config, register_extension
from gateway.config.model import Config
from gateway.config.yamlload import ConfigError, Problem

__all__ = ["Config", "ConfigError", "Problem", "load_config", "register_extension"]
