"""CLI sub-commands of the filters package (``ticketgate filters ...``).

Importing this module also imports filters.engine, which registers the filters.d config loader;
the CLI imports it while building its parser, so ``ticketgate check-config`` validates
conf/filters.d even though check-config itself loads no plugins.
"""
from __future__ import annotations

import filters.engine  # noqa: F401 - registers the conf/filters.d loader

EX_OK = 0


def cmd_filters_list(args) -> int:
    from gateway.config import load_config

    config = load_config(args.conf)
    for rule in config.filters:
        flags = [f for f, on in (("stop", rule.stop), ("ignore", rule.ignore),
                                 ("case-sensitive", rule.case_sensitive)) if on]
        conds = ", ".join(("not " if c.negated else "") + c.label for c in rule.conditions)
        print(f"{rule.where:<24} {rule.name:<32} match: {conds or '(every mail)'}"
              + (f"  [{', '.join(flags)}]" if flags else ""))
    print(f"{len(config.filters)} rule(s)")
    return EX_OK


def add_commands(sub) -> None:
    p = sub.add_parser("filters", help="list the postmaster filter rules in evaluation order")
    p.set_defaults(func=cmd_filters_list)
