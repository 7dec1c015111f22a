"""CLI sub-commands of the filters package (``ticketgate filters ...``)."""
from __future__ import annotations

EX_OK = 0


def cmd_filters_list(args) -> int:
    from gateway.app import load_config

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
