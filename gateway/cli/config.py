"""``ticketgate check-config`` (validate conf/ like ``nginx -t``; ``--defaults`` like
``postconf -d``) and ``ticketgate filters`` (the postmaster filter rules in order)."""
from __future__ import annotations

import sys

from gateway.cli.exits import EX_CONFIG, EX_OK


def print_config_problems(exc) -> None:
    print(f"ticketgate: configuration has {len(exc.problems)} problem(s):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_check_config(args) -> int:
    if args.defaults:
        return print_defaults()
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.app import load_config
    from gateway.config import ConfigError

    try:
        config = load_config(args.dir or args.conf)
    except ConfigError as exc:
        print_config_problems(exc)
        return EX_CONFIG
    from gateway.ingest.config import trust_warnings  # start-up time, as above

    for warning in trust_warnings(config):
        print(f"warning: {warning}")
    print(f"configuration ok: {config.dir} ({len(config.queues)} queues, {len(config.agents)} "
          f"agents, {len(config.calendars)} calendars, {len(config.filters)} filter rules)")
    return EX_OK


def print_defaults() -> int:
    """Every key of every section with its default and meaning (``check-config --defaults``)."""
    # imported here, not at the top: building the parser stays cheap (start-up time)
    from gateway.app import PARTS
    from gateway.config.defaults import render_defaults

    print(render_defaults(PARTS.sections), end="")
    return EX_OK


def cmd_filters_list(args) -> int:
    # imported here, not at the top: building the parser stays cheap (start-up time)
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
    p = sub.add_parser("check-config", help="validate a configuration directory (like nginx -t)")
    p.add_argument("dir", nargs="?")
    p.add_argument("--defaults", action="store_true",
                   help="print every key with its default and meaning (like postconf -d)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("filters", help="list the postmaster filter rules in evaluation order")
    p.set_defaults(func=cmd_filters_list)
