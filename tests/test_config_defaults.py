"""``check-config --defaults`` (gateway/config/defaults.py): every key of every file of conf/,
as YAML that can be pasted back, like ``postconf -d``."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.agents.identity import AGENT_AUTH
from gateway.app import PARTS, load_config
from gateway.sla.calendar_config import CALENDAR
from gateway.config.core_keys import ESCALATION_TIMES, MAIN, QUEUE
from gateway.config.defaults import render_defaults
from gateway.ingest.config import ACCOUNT_KEYS, LISTENER_KEYS
from gateway.sla.slas import SLA_KEYS
from filters.engine import LIMITS
from notifier.outbound.config import OUTBOUND

ROOT = Path(__file__).resolve().parent.parent
# a commented-out example line: "  # - name: smtp   # doc", "# default:"
EXAMPLE = re.compile(r"^(\s*)# ((?:- )?[\w'\" .*-]+:(?: |$).*)$")


def documents() -> dict[str, str]:
    """file name -> its YAML document."""
    out = {}
    for block in render_defaults(PARTS.sections).split("\n---\n"):
        first, _, rest = block.partition("\n")
        out[first.removeprefix("# ")] = block
    return out


def uncommented(text: str):
    """The document with its commented-out examples in use."""
    return yaml.safe_load("\n".join(EXAMPLE.sub(r"\1\2", line) for line in text.splitlines()))


def test_one_valid_yaml_document_per_file():
    docs = documents()
    assert list(docs) == ["ticketgate.yaml", "queues.yaml", "agents.yaml", "calendars.yaml",
                          "acl.d/*.yaml", "sla.yaml", "filters.yaml", "filters.d/*.yaml"]
    for name, text in docs.items():
        yaml.safe_load(text)            # as printed
        uncommented(text)               # and with the examples in use


def test_every_section_lists_its_keys_with_default_and_doc():
    docs = documents()
    main = uncommented(docs["ticketgate.yaml"])
    assert set(main) == set(MAIN)
    assert set(main["listeners"][0]) == set(LISTENER_KEYS)
    assert set(main["mail_accounts"][0]) == set(ACCOUNT_KEYS)
    assert main["outbound"] == {k: key.default for k, key in OUTBOUND.items()}
    assert set(main["agent_auth"]) == set(AGENT_AUTH)
    assert main["prefilters"]["spam"] == {"enabled": True, "action": "mark", "queue": None}
    assert set(main["prefilters"]) == {"trusted_headers", "auto_submitted", "bounce", "spam"}
    queue = uncommented(docs["queues.yaml"])["queues"]["Unassigned"]
    assert set(queue) == set(QUEUE) and set(queue["escalation"]) == set(ESCALATION_TIMES)
    assert set(uncommented(docs["calendars.yaml"])["default"]) == set(CALENDAR)
    assert set(uncommented(docs["sla.yaml"])["slas"][0]) == set(SLA_KEYS)
    assert uncommented(docs["filters.yaml"])["limits"] == {k: key.default
                                                           for k, key in LIMITS.items()}
    assert "possible_not" in uncommented(docs["acl.d/*.yaml"])["100-example"]
    assert "name" in uncommented(docs["filters.d/*.yaml"])[0]
    # each key line carries its doc
    assert re.search(r"^  #   max_connections: 100 +# concurrent connections",
                     docs["ticketgate.yaml"], re.M)
    assert re.search(r"^ {2}give_up_after: 4d +# stop retrying", docs["ticketgate.yaml"], re.M)


def test_the_ticketgate_yaml_defaults_load_back_as_if_absent(conf_dir, tmp_path):
    import shutil

    empty = tmp_path / "empty"
    shutil.copytree(conf_dir, empty)
    (empty / "ticketgate.yaml").write_text("")
    (conf_dir / "ticketgate.yaml").write_text(documents()["ticketgate.yaml"])
    printed, absent = load_config(conf_dir), load_config(empty)
    for name in ("database_url", "fqdn", "default_queue", "ticket_number", "follow_up",
                 "processing", "escalation", "system_addresses", "states", "priorities",
                 "default_priority", "settings", "listeners", "mail_accounts", "outbound",
                 "prefilters", "agent_auth"):
        assert getattr(printed, name) == getattr(absent, name), name


def test_the_cli_prints_it():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--defaults"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == render_defaults(PARTS.sections)
