"""The postmaster filters (conf/filters.d, engine.py) and the built-in pre-filters
(builtin/, ordered in prefilters.py).

Importing this package wires nothing: ``gateway.app`` takes the parts listed here."""
from filters import engine
from filters.prefilters import PREFILTERS, prefilters_section

# Parts of conf/ this package reads, in load order.
CONFIG_SECTIONS = (prefilters_section(PREFILTERS), engine.SECTION)

__all__ = ["CONFIG_SECTIONS", "PREFILTERS"]
