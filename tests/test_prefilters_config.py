"""``prefilters:`` in ticketgate.yaml is validated like every other section: a typo in a
pre-filter's name, key, type or value is a problem with file and line."""
from __future__ import annotations

import re

import pytest

from gateway.app import load_config
from gateway.config import ConfigError
from tests.conftest import line_of


def set_prefilters(conf_dir, block: str) -> str:
    path = conf_dir / "ticketgate.yaml"
    text = path.read_text()
    text = re.sub(r"^prefilters:\n(  .*\n)*", "prefilters:\n" + block, text, flags=re.M)
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("block, needle, message", [
    ("  spamm: {enabled: no}\n", "spamm", "unknown pre-filter 'spamm'"),
    ("  spam: {action: bogus}\n", "bogus", "'action' must be one of mark, queue, drop"),
    ('  bounce: {enabled: "nope"}\n', "nope", "'enabled' must be yes/no"),
    ("  spam: {colour: red}\n", "colour", "unknown key 'colour' in prefilters.spam"),
    ("  spam: {action: queue, queue: Nowhere}\n", "Nowhere", "unknown queue 'Nowhere'"),
    ("  auto_submitted: {noreply_regex: '(unclosed'}\n", "unclosed",
     "noreply_regex: not a regular expression"),
])
def test_prefilter_typos_name_file_and_line(conf_dir, block, needle, message):
    path = set_prefilters(conf_dir, block)
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    found = [p for p in exc.value.problems if message in p.message]
    assert found, exc.value.problems
    assert found[0].file == path and found[0].line == line_of(path, needle)


def test_settings_have_defaults_and_a_switch(conf_dir):
    set_prefilters(conf_dir, "  bounce: {enabled: no}\n")
    config = load_config(conf_dir)
    assert config.prefilters["bounce"] == {"enabled": False}
    assert config.prefilters["spam"] == {"enabled": True, "action": "mark", "queue": None}
    assert config.prefilters["auto_submitted"]["loop_header"] == "X-Ticketgate-Loop"


def test_a_disabled_prefilter_does_not_run(conf_dir, make_app, ingest):
    set_prefilters(conf_dir, "  spam: {enabled: no}\n")
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    app = make_app()
    raw = (b"From: a@example.com\r\nTo: support@example.com\r\nSubject: hi\r\n"
           b"X-Spam-Flag: YES\r\nMessage-ID: <spam-off@example.com>\r\n\r\nbuy\r\n")
    outcome = process_inbound(app.store, app.pipeline, accept(app.store, raw, Envelope()).inbound_id)
    assert outcome.status == "done"
    with app.store.read_session() as s:
        from gateway.store.models import Article

        article = s.query(Article).one()
        assert "spam" not in (article.flags or {})
