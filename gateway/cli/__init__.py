"""The ``ticketgate`` command: one module per group of sub-commands, exit codes from exits.py.

Each group module has ``add_commands(subparsers)`` (its parser lines) and a ``cmd_*`` function
per sub-command. ``GROUPS`` lists the groups in the order ``--help`` shows them. Building the
parser imports only these small modules: a command imports what it needs when it runs, so a
piped ``ticketgate ingest`` (once per mail) does not pay for the daemon or the other commands.
"""
from __future__ import annotations

import argparse
import logging

from gateway.cli import config, daemon, escalations, mail_in, outbox, tickets
from gateway.cli.common import default_conf
from gateway.cli.exits import EX_CONFIG, EX_OK, EX_USAGE

GROUPS = (config, mail_in, tickets, daemon, escalations, outbox)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketgate", description="E-mail ticket gateway: mail in, tickets and "
                                       "auto-responses out (exit codes follow sysexits(3)).")
    parser.add_argument("--conf", default=default_conf(), help="configuration directory")
    parser.add_argument("--database", help="override the database URL from the configuration")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EX_USAGE if exc.code not in (0, None) else EX_OK
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # imported here, not at the top: --help and usage errors stay cheap (start-up time)
    from gateway.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        config.print_config_problems(exc)
        return EX_CONFIG
    except BrokenPipeError:
        return EX_OK

