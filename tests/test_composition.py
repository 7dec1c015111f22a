"""The composition root (gateway/app.py): every part in one place, in a pinned order, and
no wiring by import side effects."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import PARTS
from gateway.parts import AfterApply, Parts, StartupError

ROOT = Path(__file__).resolve().parent.parent


def test_orders_that_matter_are_pinned():
    assert PARTS.names("prefilters") == ["trusted_headers", "auto_submitted", "bounce", "spam"]
    # the auto-response is queued before agents are notified
    assert PARTS.names("after_apply") == ["agent reply", "auto response", "agent notifications"]
    assert PARTS.names("message_id_lookups") == ["outbound queue"]
    assert PARTS.names("jobs") == ["outbound sender", "escalation scan", "ticket timers"]
    assert PARTS.names("sources") == ["smtp", "imap"]
    sections = PARTS.names("sections")
    # templates are checked against the queues and the outbound settings they render with
    assert sections.index("templates") > sections.index("outbound")
    assert sections.index("prefilters") < sections.index("filters")


def test_a_name_given_twice_is_a_startup_error():
    hook = AfterApply("auto response", lambda *a: None)
    with pytest.raises(StartupError, match="after_apply: 'auto response' is given twice"):
        Parts(after_apply=(*PARTS.after_apply, hook))


def test_importing_the_packages_wires_nothing():
    """Importing every module of filters/ and notifier/ changes no list of the gateway's:
    the pipeline of a fresh process with no composition root has no parts."""
    code = ("import pkgutil, importlib, filters, notifier\n"
            "for pkg in (filters, notifier):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "from gateway.parts import Parts\n"
            "from gateway.config import load_config\n"
            "from gateway.pipeline import Pipeline\n"
            "config = load_config('conf')\n"
            "p = Pipeline(config, Parts())\n"
            "print(len(p.prefilters), len(p.after_apply), len(p.message_id_lookups), "
            "config.filter_engine is None, config.templates == {})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["0", "0", "0", "True", "True"], out.stderr


def test_no_module_level_registry_is_left():
    names = ("_EXTENSIONS", "AFTER_APPLY.append", "MESSAGE_ID_LOOKUPS.append", "register_job",
             "register_extension", "register_after_apply", "load_plugins", "PLUGINS =")
    found = [f"{path.relative_to(ROOT)}: {name}"
             for folder in ("gateway", "filters", "notifier")
             for path in (ROOT / folder).rglob("*.py")
             for name in names if name in path.read_text()]
    assert found == []
