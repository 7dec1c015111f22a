"""Config loading imports no application code: gateway/config/ needs nothing outside itself,
and the parts of conf/ that other packages read come in as ConfigSections, in an order
that lets each check what it refers to."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.app import PARTS

ROOT = Path(__file__).resolve().parent.parent


def test_importing_gateway_config_loads_no_other_part_of_ticketgate():
    """Nor does loading the core of conf/ (queues with escalation times and calendars)."""
    code = ("import sys, pkgutil, importlib, gateway.config\n"
            "for m in pkgutil.walk_packages(gateway.config.__path__, 'gateway.config.'):\n"
            "    importlib.import_module(m.name)\n"
            "config = gateway.config.load_config('conf')\n"
            "assert config.queues['VIP'].escalation.first_response == 60\n"
            "print(' '.join(sorted(m for m in sys.modules\n"
            "                      if m.split('.')[0] in ('gateway', 'filters', 'notifier'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert "gateway.config.loader" in loaded
    assert [m for m in loaded if m != "gateway" and not m.startswith("gateway.config")] == []


def test_calendars_load_before_what_names_a_calendar():
    sections = PARTS.names("sections")
    assert sections[0] == "calendars"
    assert sections.index("calendars") < sections.index("slas")


def test_every_section_that_reads_conf_declares_its_keys():
    without = [part.name for part in PARTS.sections if not part.keys]
    assert without == ["templates"]      # templates/ holds template files, no keys
