"""``ticketgate test-mail``: the dry run explains pre-filters, rules, settings, follow-up and
result, in text and JSON, and never writes to the database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from filters.explain import explain, render_text
from gateway.intake import Envelope
from gateway.mail import parse
from gateway.store.models import InboundMail, Ticket

ROOT = Path(__file__).resolve().parent.parent

RULES = """
- name: outage
  match:
    from: '@monitoring\\.test$'
    subject: '(?P<host>[\\w.-]+) is (down|unreachable)'
  set:
    queue: Network Outage
    priority: 4 high
    title: "Outage: ${subject.host}"
  set_on_follow_up: {priority: 5 very high}
  stop: true
- name: almost
  match:
    subject: 'is down'
    X-Site: 'berlin'
  set: {queue: QA}
- name: unrelated
  match: {body: 'invoice'}
  set: {queue: QA}
"""

MAIL = ("From: Mon <alerts@monitoring.test>\r\nTo: support@example.com\r\n"
        "Subject: core-1 is down\r\nMessage-ID: <tm1@monitoring.test>\r\n"
        "Content-Type: text/plain\r\n\r\nping failed\r\n")


def setup_conf(conf_dir):
    for p in (conf_dir / "filters.d").glob("*.yaml"):
        p.unlink()
    (conf_dir / "filters.d" / "10-rules.yaml").write_text(textwrap.dedent(RULES))


def cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, input=stdin)


def counts(db_url):
    from sqlalchemy import create_engine

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return (c.execute(select(func.count()).select_from(Ticket)).scalar_one(),
                    c.execute(select(func.count()).select_from(InboundMail)).scalar_one())
    finally:
        engine.dispose()


def test_text_output_sections_in_order(conf_dir, db_url, tmp_path, make_app):
    setup_conf(conf_dir)
    make_app()                             # creates the schema
    before = counts(db_url)
    (tmp_path / "m.eml").write_text(MAIL)
    res = cli("--conf", str(conf_dir), "--database", db_url, "test-mail", str(tmp_path / "m.eml"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    heads = ["1. Pre-filters", "2. Postmaster filters", "3. Set", "4. Follow-up", "5. Result"]
    positions = [out.index(h) for h in heads]
    assert positions == sorted(positions)
    assert "auto_submitted   no" in out and "spam             no" in out
    assert "MATCH  outage (10-rules.yaml:2)" in out
    assert "subject" in out and "'core-1 is down'" in out and "matched 'core-1 is down'" in out
    assert "sets: queue='Network Outage', priority='4 high', title='Outage: core-1'" in out
    assert "stop: 2 later rule(s) not checked" in out
    assert "queue:         Network Outage" in out
    assert "priority:      4 high" in out and "state:         new" in out
    assert "auto-response: auto_reply" in out
    assert counts(db_url) == before


def test_near_miss_and_plain_miss_in_text(conf_dir, db_url, tmp_path, make_app):
    setup_conf(conf_dir)
    make_app()
    (tmp_path / "m.eml").write_text(MAIL.replace("alerts@monitoring.test", "bob@customer.test"))
    res = cli("--conf", str(conf_dir), "--database", db_url, "test-mail", str(tmp_path / "m.eml"))
    out = res.stdout
    assert "no     outage (10-rules.yaml:2): from does not match" in out
    assert "NEAR   almost (10-rules.yaml:12)" in out
    assert "failed: X-Site: not in this mail" in out
    assert "no     unrelated" in out
    assert "queue:         Unassigned" in out


def test_json_output(conf_dir, db_url, tmp_path, make_app):
    setup_conf(conf_dir)
    make_app()
    before = counts(db_url)
    res = cli("--conf", str(conf_dir), "--database", db_url, "test-mail", "--json", "-",
              stdin=MAIL)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [p["name"] for p in data["prefilters"]] == ["trusted_headers", "auto_submitted",
                                                       "bounce", "spam"]
    assert data["matched_rules"] == ["outage"] and data["near_misses"] == []
    [rule] = [r for r in data["rules"] if r.get("matched") is True]
    assert rule["conditions"][0] == {"condition": "from", "pattern": "@monitoring\\.test$",
                                     "header": "From", "value": "alerts@monitoring.test",
                                     "matched": "@monitoring.test"}
    assert data["settings"]["title"] == "Outage: core-1"
    assert data["follow_up_settings"] == {"priority": "5 very high"}
    assert data["follow_up"] == ["no ticket number or known Message-ID: new ticket"]
    assert (data["action"], data["queue"], data["state"], data["priority"]) == (
        "new_ticket", "Network Outage", "new", "4 high")
    assert data["auto_response"] == "auto_reply"
    assert all("message" in line for line in data["trace"])
    assert counts(db_url) == before


def test_follow_up_explained(conf_dir, make_app):
    setup_conf(conf_dir)
    app = make_app()
    from gateway.intake import accept
    from gateway.processing import process_inbound

    first = process_inbound(app.store, app.pipeline,
                            accept(app.store, MAIL.encode(), Envelope()).inbound_id)
    reply = MAIL.replace("tm1@", "tm2@").replace(
        "Subject: core-1 is down", f"Subject: Re: [Ticket#{first.ticket_number}] core-1 is down")
    with app.store.session() as s:
        tickets_before = s.execute(select(func.count()).select_from(Ticket)).scalar_one()
    with app.store.read_session() as session:
        decision = app.pipeline.decide(session, parse(reply.encode()), Envelope())
        info = explain(decision, app.config)
        text = render_text(decision, app.config)
    assert info["action"] == "follow_up" and info["ticket"] == first.ticket_number
    assert info["priority"] == "5 very high" and info["queue"] == "Network Outage"
    assert any(first.ticket_number in m for m in info["follow_up"])
    assert f"follow_up -> ticket {first.ticket_number}" in text
    with app.store.session() as s:
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == tickets_before


def test_ignored_mail_explained_and_nothing_written(conf_dir, db_url, tmp_path, make_app):
    (conf_dir / "filters.d" / "00-drop.yaml").write_text(
        "- name: drop\n  match: {subject: 'is down'}\n  set: {ignore: yes}\n")
    make_app()
    before = counts(db_url)
    res = cli("--conf", str(conf_dir), "--database", db_url, "test-mail", "-", stdin=MAIL)
    assert "action:        ignore (filter drop: ignore)" in res.stdout
    assert "(not checked: the mail was dropped)" in res.stdout
    assert counts(db_url) == before == (0, 0)


def test_prefilter_verdicts_shown(conf_dir, db_url, make_app):
    make_app()
    auto = MAIL.replace("Content-Type", "Auto-Submitted: auto-generated\r\nContent-Type")
    res = cli("--conf", str(conf_dir), "--database", db_url, "test-mail", "-", stdin=auto)
    assert "auto_submitted   HIT" in res.stdout
    assert "auto-response: auto_reply (suppressed: " in res.stdout


def test_python_api_text_and_json(conf_dir, make_app):
    setup_conf(conf_dir)
    app = make_app()
    with app.store.read_session() as session:
        decision = app.pipeline.decide(session, parse(MAIL.encode()), Envelope())
    info = explain(decision, app.config)
    json.dumps(info, default=str)
    assert info["matched_rules"] == ["outage"]
    text = render_text(decision, app.config)
    assert "MATCH  outage" in text and "title='Outage: core-1'" in text


def test_trust_authentication_results_is_a_choice_of_the_dry_run_too(conf_dir, db_url, tmp_path):
    """test-mail judges Authentication-Results as the real source would: untrusted unless
    told the MTA in front strips foreign ones (--trust-authentication-results)."""
    from tests.mails import make_mail
    from tests.test_agent_identity import TOM, TRUSTED_AR, add_agent_auth

    add_agent_auth(conf_dir)
    (tmp_path / "m.eml").write_bytes(make_mail(subject="New printer please", frm=TOM,
                                               headers={"Authentication-Results": TRUSTED_AR}))
    base = ("--conf", str(conf_dir), "--database", db_url, "test-mail", str(tmp_path / "m.eml"),
            "--json")
    untrusted = json.loads(cli(*base).stdout)
    trusted = json.loads(cli(*base, "--trust-authentication-results").stdout)
    assert untrusted["sender"]["type"] == "customer"
    assert trusted["sender"] == {"type": "agent", "agent": "tmoore"}
