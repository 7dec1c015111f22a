"""The CLI package (gateway/cli/): every sub-command comes from one of its modules, exit
numbers come from one table (exits.py), and building the parser stays cheap for the pipe."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import GROUPS, build_parser, exits
from tests.mails import make_mail

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "gateway" / "cli"
BIN = str(Path(sys.executable).parent / "ticketgate")
# Modules of gateway/cli/ that hold no sub-command.
HELPERS = {"__init__", "__main__", "common", "exits"}
SYSEXITS = ("EX_OK", "EX_USAGE", "EX_DATAERR", "EX_NOINPUT", "EX_UNAVAILABLE", "EX_SOFTWARE",
            "EX_TEMPFAIL", "EX_CONFIG")


def product_modules():
    for folder in ("gateway", "filters", "notifier"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def help_sub_commands() -> list[str]:
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return re.search(r"\{([a-z,-]+)\}", out).group(1).split(",")


def test_every_sub_command_comes_from_a_module_of_gateway_cli():
    names = help_sub_commands()
    assert {"check-config", "ingest", "process", "tickets", "show", "test-mail", "quarantine",
            "reprocess", "run", "status", "escalations", "outbox", "filters"} <= set(names)
    [sub] = [a for a in build_parser()._actions if a.dest == "command"]
    groups = {group.__name__ for group in GROUPS}
    for name in names:
        module = sub.choices[name].get_default("func").__module__
        assert module in groups, f"{name}: provided by {module}"
    # every other module of the package is a group listed in GROUPS
    modules = {f"gateway.cli.{p.stem}" for p in CLI.glob("*.py") if p.stem not in HELPERS}
    assert modules == groups
    # nobody outside gateway/cli/ adds a sub-command
    outside = [str(p.relative_to(ROOT)) for p in product_modules()
               if CLI not in p.parents and "add_parser(" in p.read_text()]
    assert outside == []


def test_the_exit_table_is_sysexits():
    for name in SYSEXITS:
        assert getattr(exits, name) == getattr(os, name), name
    assert {n for n in vars(exits) if n.startswith("EX_")} == set(SYSEXITS)


# An EX_ name given a value (``EX_OK = 0``, ``EX_OK, EX_USAGE = 0, 64``), or a sysexits number
# returned or exited with.
DEFINES_EX = re.compile(r"^\s*(?:EX_\w+\s*,\s*)*EX_\w+\s*=", re.M)
SYSEXITS_NUMBER = re.compile(r"\b(?:return|exit\(|SystemExit\()\s*(?:6[4-9]|7[0-8])\b")
ANY_NUMBER = re.compile(r"\breturn\s+\d+\b")


def test_exit_numbers_are_defined_only_in_exits_py():
    found = []
    for path in product_modules():
        if path == CLI / "exits.py":
            continue
        text, rel = path.read_text(), str(path.relative_to(ROOT))
        found += [f"{rel}: defines {m.group().strip()}" for m in DEFINES_EX.finditer(text)]
        found += [f"{rel}: {m.group()}" for m in SYSEXITS_NUMBER.finditer(text)]
        if CLI in path.parents:   # a command returns a name from exits.py, never a number
            found += [f"{rel}: {m.group()}" for m in ANY_NUMBER.finditer(text)]
    assert found == []


def tg(*args, stdin=b""):
    return subprocess.run([BIN, *args], input=stdin, capture_output=True, timeout=60)


def test_usage_config_and_tempfail_exits_come_from_exits_py(conf_dir, db_url):
    assert tg("--conf", str(conf_dir), "ingest", "--no-such-flag").returncode == exits.EX_USAGE
    assert tg("--conf", str(conf_dir), "ingest").returncode == exits.EX_USAGE   # no mail
    assert tg("check-config", str(conf_dir)).returncode == exits.EX_OK
    (conf_dir / "queues.yaml").write_text("queues:\n  Unassigned: {group: [unclosed\n")
    r = tg("check-config", str(conf_dir))
    assert r.returncode == exits.EX_CONFIG and b"queues.yaml:3" in r.stderr
    r = tg("--conf", str(conf_dir), "--database", db_url, "ingest", stdin=make_mail())
    assert r.returncode == exits.EX_TEMPFAIL   # the MTA keeps the mail and retries
    assert tg("--conf", str(conf_dir), "filters").returncode == exits.EX_CONFIG


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--no-such-flag"]])
def test_building_the_parser_imports_no_heavy_module(argv):
    """A piped ``ingest`` runs once per mail: the parser, --help and a usage error import
    neither SQLAlchemy nor the app, the daemon, filters/ or notifier/."""
    code = ("import sys\n"
            "from gateway.cli import main\n"
            f"rc = main({argv!r})\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'aiosmtpd', 'apscheduler', 'jinja2', 'filters', 'notifier')} | "
            "{m for m in sys.modules if m in ('gateway.app', 'gateway.daemon', "
            "'gateway.store.models')})\n"
            "print(rc, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    rc = exits.EX_OK if argv == ["--help"] else exits.EX_USAGE
    assert out.stdout.splitlines()[-1] == f"{rc} []", out.stderr


def test_python_dash_m_runs_the_same_command():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == exits.EX_OK
    assert out.stdout == subprocess.run([BIN, "--help"], capture_output=True, text=True,
                                        cwd=ROOT).stdout
