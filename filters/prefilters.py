"""The built-in pre-filters in the order they run, and their part of ticketgate.yaml.

To add one: a module in ``filters/builtin/`` that ends with ``PREFILTER = Prefilter(...)``
(gateway/parts.py), and one entry in ``PREFILTERS`` below. Its settings appear under
``prefilters.<name>`` (with ``enabled``), are validated at load and listed by
``check-config --defaults``.
"""
from __future__ import annotations

from filters.builtin import auto_submitted, bounce, spam, trusted_headers
from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key, section
from gateway.config.yamlload import LineDict

PREFILTERS = (trusted_headers.PREFILTER, auto_submitted.PREFILTER, bounce.PREFILTER,
              spam.PREFILTER)

ENABLED = Key(bool, True, "run this pre-filter")


def keys_of(unit) -> dict:
    return {"enabled": ENABLED, **unit.settings}


def prefilters_section(units) -> ConfigSection:
    """``config.prefilters``: {name: settings} for every unit, validated (unknown names and
    keys, wrong types and values are problems with file and line)."""

    def load(config, problems: list[Problem]) -> None:
        raw = config.raw.get("prefilters") or {}
        known = {unit.name: unit for unit in units}
        if isinstance(raw, dict):
            for name in raw:
                if name not in known:
                    problems.append(Problem(getattr(raw, "file", "ticketgate.yaml"),
                                            raw.line_of(name) if isinstance(raw, LineDict)
                                            else 0,
                                            f"prefilters: unknown pre-filter {name!r} (known: "
                                            f"{', '.join(known)})"))
        elif raw:
            problems.append(Problem(getattr(raw, "file", "ticketgate.yaml"),
                                    getattr(raw, "line", 0), "prefilters must be a mapping"))
            raw = {}
        out = {}
        for unit in units:
            mapping = raw.get(unit.name)
            settings = section(mapping, keys_of(unit), problems, f"prefilters.{unit.name}")
            for key, message in unit.validate(settings, config):
                line = mapping.line_of(key) if isinstance(mapping, LineDict) else \
                    getattr(raw, "line", 0)
                problems.append(Problem(getattr(mapping, "file", getattr(raw, "file", "?")),
                                        line, f"prefilters.{unit.name}.{key}: {message}"))
            out[unit.name] = settings
        config.prefilters = out

    return ConfigSection("prefilters", load, tuple(
        (f"ticketgate.yaml prefilters.{unit.name}", keys_of(unit)) for unit in units))
