"""The built-in pre-filters in the order they run, and their part of ticketgate.yaml.

To add one: a module in ``filters/builtin/`` that ends with ``PREFILTER = Prefilter(...)``
(gateway/parts.py), and one entry in ``PREFILTERS`` below. Its settings appear under
``prefilters.<name>`` (with ``enabled``), are validated at load and listed by
``check-config --defaults``.
"""
from __future__ import annotations

from filters.builtin import auto_submitted, bounce, spam, trusted_headers
from gateway.config import ConfigSection, Problem
from gateway.config.schema import Key

PREFILTERS = (trusted_headers.PREFILTER, auto_submitted.PREFILTER, bounce.PREFILTER,
              spam.PREFILTER)

ENABLED = Key(bool, True, "run this pre-filter")


def keys_of(unit) -> dict:
    return {"enabled": ENABLED, **unit.settings}


def prefilters_section(units) -> ConfigSection:
    """``config.prefilters``: {name: settings} for every unit. The schema checks names, keys,
    types and values (``keys`` below); ``unit.validate`` what needs the rest of the config."""

    def load(config, problems: list[Problem]) -> None:
        checked = config.settings["prefilters"]
        for unit in units:
            settings = checked[unit.name]
            for key, message in unit.validate(settings, config):
                problems.append(Problem(settings.file, settings.line_of(key),
                                        f"prefilters.{unit.name}.{key}: {message}"))
        config.prefilters = checked

    table = {unit.name: Key(dict, dict, unit.doc, keys=keys_of(unit)) for unit in units}
    return ConfigSection("prefilters", load, keys=(("ticketgate.yaml", {
        "prefilters": Key(dict, dict, "built-in pre-filters, in the order they run, and their "
                                      "settings", keys=table, noun="pre-filter")}),))
