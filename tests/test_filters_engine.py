"""Postmaster filter rules (conf/filters.d): every condition type, negation, ordering, stop,
captures, follow-up-only sets, ignore, follow_up: false, bounded matching; through the engine
and through ingest (the whole pipeline)."""
from __future__ import annotations

import textwrap
import time

import pytest
from sqlalchemy import func, select

import filters.engine  # noqa: F401 - registers the filters.d loader
from filters import safe_regex
from gateway.app import load_config
from gateway.mail import parse
from gateway.store.models import InboundMail, Ticket


def mail(subject="Help", frm="Alice Customer <alice@customer.test>", to="support@example.com",
         body="Please help.", headers=None, cc=None, attachment=None, msgid=None) -> bytes:
    lines = [f"From: {frm}", f"To: {to}", f"Subject: {subject}",
             f"Message-ID: <{msgid or str(time.monotonic_ns()) + '@customer.test'}>",
             "Date: Mon, 23 Nov 2026 10:00:00 +0100", "MIME-Version: 1.0"]
    if cc:
        lines.append(f"Cc: {cc}")
    for name, value in (headers if isinstance(headers, list) else
                        list((headers or {}).items())):
        lines.append(f"{name}: {value}")
    if attachment:
        lines.append('Content-Type: multipart/mixed; boundary="b1"')
        text = ("\r\n".join(lines) + "\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8"
                f"\r\n\r\n{body}\r\n--b1\r\nContent-Type: application/octet-stream\r\n"
                f'Content-Disposition: attachment; filename="{attachment}"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b1--\r\n")
        return text.encode()
    lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def write_rules(conf_dir, text, name="50-test.yaml", keep_example=False):
    d = conf_dir / "filters.d"
    if not keep_example:
        for p in d.glob("*.yaml"):
            p.unlink()
    (d / name).write_text(textwrap.dedent(text))


def engine_for(conf_dir, text, **kw):
    write_rules(conf_dir, text, **kw)
    return load_config(conf_dir).filter_engine


def run(engine, raw):
    return engine.run(parse(raw))


# ---- condition types --------------------------------------------------------------------------
RULES_EACH = """
- name: by-subject
  match: {subject: 'printer'}
  set: {title: subject}
- name: by-from
  match: {from: '@vendor\\.test$'}
  set: {title: from}
- name: by-from-display-name
  match: {from: '^Big Boss'}
  set: {title: from-name}
- name: by-to
  match: {to: '^hardware@'}
  set: {title: to}
- name: by-cc
  match: {cc: 'audit@'}
  set: {title: cc}
- name: by-body
  match: {body: 'order number \\d+'}
  set: {title: body}
- name: by-attachment
  match: {attachment_name: '\\.(exe|scr)$'}
  set: {title: attachment}
- name: by-header
  match: {X-Mailer: 'Outlook'}
  set: {title: header}
"""


@pytest.mark.parametrize("kwargs,title", [
    ({"subject": "My PRINTER is broken"}, "subject"),
    ({"frm": "sales@vendor.test"}, "from"),
    ({"frm": "Big Boss <boss@corp.test>"}, "from-name"),
    ({"to": "Hardware <hardware@example.com>"}, "to"),
    ({"cc": "x@y.test, audit@corp.test"}, "cc"),
    ({"body": "see order number 12345 please"}, "body"),
    ({"attachment": "invoice.EXE"}, "attachment"),
    ({"headers": {"X-Mailer": "Microsoft Outlook 16.0"}}, "header"),
])
def test_each_condition_type(conf_dir, kwargs, title):
    engine = engine_for(conf_dir, RULES_EACH)
    out = run(engine, mail(**kwargs))
    assert out.settings == {"title": title}
    assert out.matched == [{"subject": "by-subject", "from": "by-from", "from-name":
                            "by-from-display-name", "to": "by-to", "cc": "by-cc",
                            "body": "by-body", "attachment": "by-attachment",
                            "header": "by-header"}[title]]


def test_no_condition_matches_nothing_set(conf_dir):
    out = run(engine_for(conf_dir, RULES_EACH), mail())
    assert out.settings == {} and out.matched == [] and out.ignore is None
    assert len([t for t in out.trace if t.get("matched") is False]) == 8


def test_all_conditions_must_hold_and_near_miss_names_the_failed_one(conf_dir):
    engine = engine_for(conf_dir, """
    - name: both
      match: {subject: 'invoice', from: '@vendor\\.test$'}
      set: {queue: QA}
    """)
    out = run(engine, mail(subject="Invoice 7"))
    assert out.settings == {}
    [line] = out.trace
    assert line["near_miss"] is True and line["matched"] is False
    assert line["conditions"][0]["condition"] == "subject"
    assert line["conditions"][0]["matched"] == "Invoice"
    assert line["failed"]["condition"] == "from"
    assert "near miss" in line["message"] and "from does not match" in line["message"]
    out = run(engine, mail(subject="Invoice 7", frm="a@vendor.test"))
    assert out.settings == {"queue": "QA"}


def test_case_insensitive_by_default_case_sensitive_on_request(conf_dir):
    engine = engine_for(conf_dir, """
    - name: loud
      case_sensitive: yes
      match: {subject: 'URGENT'}
      set: {priority: 5 very high}
    - name: quiet
      match: {subject: 'urgent'}
      set: {type: quiet}
    """)
    assert run(engine, mail(subject="urgent please")).settings == {"type": "quiet"}
    assert run(engine, mail(subject="URGENT")).settings == {"priority": "5 very high",
                                                            "type": "quiet"}


def test_header_occurring_several_times_matches_any(conf_dir):
    engine = engine_for(conf_dir, """
    - name: relay
      match: {Received: 'from relay\\.partner\\.test'}
      set: {queue: QA}
    """)
    raw = mail(headers=[("Received", "from mx1.example.com by mx"),
                        ("Received", "from relay.partner.test by mx1"),
                        ("Received", "from laptop by relay")])
    out = run(engine, raw)
    assert out.settings == {"queue": "QA"}
    assert "relay.partner.test" in out.trace[0]["conditions"][0]["value"]


def test_absent_header_fails_and_trace_says_so(conf_dir):
    engine = engine_for(conf_dir, """
    - name: spamflag
      match: {X-Spam-Flag: 'YES'}
      set: {queue: QA}
    """)
    out = run(engine, mail())
    assert out.settings == {}
    assert out.trace[0]["failed"]["checked"] == "absent"
    assert "no X-Spam-Flag in this mail" in out.trace[0]["message"]


def test_negation(conf_dir):
    engine = engine_for(conf_dir, """
    - name: hardware-not-newsletter
      match:
        to: '^hardware@'
        not:
          subject: 'newsletter'
          X-List-Id: '.'
      set: {queue: Hardware, priority: 4}
    """)
    to = "hardware@example.com"
    out = run(engine, mail(to=to, subject="disk dead"))
    assert out.settings == {"queue": "Hardware", "priority": "4 high"}
    negs = [c for c in out.trace[0]["conditions"] if c.get("negated")]
    assert [c["condition"] for c in negs] == ["not subject", "not X-List-Id"]
    out = run(engine, mail(to=to, subject="Our NEWSLETTER"))
    assert out.settings == {}
    assert out.trace[0]["near_miss"] and out.trace[0]["failed"]["condition"] == "not subject"
    assert run(engine, mail(to=to, headers={"X-List-Id": "<l.test>"})).settings == {}


def test_only_negated_conditions(conf_dir):
    engine = engine_for(conf_dir, """
    - name: no-message-id-domain
      match: {not: {from: '@example\\.com$'}}
      set: {type: external}
    """)
    assert run(engine, mail()).settings == {"type": "external"}
    assert run(engine, mail(frm="jane.doe@example.com")).settings == {}


# ---- order, stop, override ----------------------------------------------------------------------
def test_later_rules_override_earlier_and_stop_ends(conf_dir):
    engine = engine_for(conf_dir, """
    - name: first
      match: {subject: 'disk'}
      set: {queue: Hardware, priority: 2 low, dynamic_fields: {A: one}}
    - name: second
      match: {subject: 'disk'}
      set: {priority: 4 high, dynamic_fields: {B: two}}
      stop: true
    - name: third
      match: {subject: 'disk'}
      set: {queue: QA}
    """)
    out = run(engine, mail(subject="disk full"))
    assert out.settings == {"queue": "Hardware", "priority": "4 high",
                            "dynamic_fields": {"A": "one", "B": "two"}}
    assert out.matched == ["first", "second"] and out.evaluated == 2
    assert any(t.get("stop") for t in out.trace)
    assert not any(t.get("rule") == "third" and "matched" in t for t in out.trace)


def test_stop_only_after_a_match(conf_dir):
    engine = engine_for(conf_dir, """
    - name: stopper
      match: {subject: 'never'}
      set: {queue: QA}
      stop: true
    - name: after
      match: {subject: 'disk'}
      set: {queue: Hardware}
    """)
    assert run(engine, mail(subject="disk")).settings == {"queue": "Hardware"}


def test_multiple_files_in_file_name_order(conf_dir):
    write_rules(conf_dir, """
    - name: from-20
      match: {subject: 'x'}
      set: {queue: Hardware, title: twenty}
    """, name="20-b.yaml")
    write_rules(conf_dir, """
    - name: from-05
      match: {subject: 'x'}
      set: {queue: QA, type: five}
    """, name="05-a.yaml", keep_example=True)
    write_rules(conf_dir, """
    - name: from-90
      match: {subject: 'x'}
      set: {title: ninety}
    """, name="90-c.yml", keep_example=True)
    config = load_config(conf_dir)
    assert [r.name for r in config.filters] == ["from-05", "from-20", "from-90"]
    out = config.filter_engine.run(parse(mail(subject="x")))
    assert out.settings == {"queue": "Hardware", "type": "five", "title": "ninety"}
    assert out.matched == ["from-05", "from-20", "from-90"]


def test_example_conf_rules(conf_dir):
    engine = load_config(conf_dir).filter_engine
    out = run(engine, mail(subject="printer down", frm="alerts@monitoring.example.com"))
    assert out.settings["queue"] == "Network Outage"   # stop: the printer rule never runs
    out = run(engine, mail(subject="Printer out of toner"))
    assert out.settings["queue"] == "Hardware::Printer"


# ---- captures --------------------------------------------------------------------------------
def test_captured_values_named_numbered_and_whole(conf_dir):
    engine = engine_for(conf_dir, """
    - name: branch
      match:
        subject: '^\\[(?P<branch>[A-Z]{2,4})\\] (\\w+)'
        from: '^(?P<user>[^@]+)@(?P<domain>.+)$'
      set:
        title: "${subject.branch}/${subject.2}: ${subject.0} $${literal}"
        customer_id: "${from.domain}"
        customer_user: "${from.user}@${FROM.domain}"
        dynamic_fields: {Branch: "${subject.1}"}
    """)
    out = run(engine, mail(subject="[NYC] Outage in lobby", frm="Bob <bob@corp.test>"))
    assert out.settings == {"title": "NYC/Outage: [NYC] Outage ${literal}",
                            "customer_id": "corp.test", "customer_user": "bob@corp.test",
                            "dynamic_fields": {"Branch": "NYC"}}


def test_captured_queue_is_checked_at_match_time(conf_dir):
    engine = engine_for(conf_dir, """
    - name: queue-from-header
      match: {X-Route: '^(?P<q>.+)$'}
      set: {queue: "${X-Route.q}", priority: "${x-route.q}"}
    """)
    out = run(engine, mail(headers={"X-Route": "Hardware"}))
    assert out.settings == {"queue": "Hardware"}
    assert any("not a known priority" in t["message"] for t in out.trace)
    out = run(engine, mail(headers={"X-Route": "Nowhere"}))
    assert out.settings == {}
    assert any("not a known queue" in t["message"] for t in out.trace)


def test_optional_group_that_did_not_take_part_is_empty(conf_dir):
    engine = engine_for(conf_dir, """
    - name: opt
      match: {subject: 'ticket( #(\\d+))?'}
      set: {title: "T${subject.2}"}
    """)
    assert run(engine, mail(subject="ticket")).settings == {"title": "T"}
    assert run(engine, mail(subject="ticket #42")).settings == {"title": "T42"}


# ---- follow-up sets, ignore, follow_up: false through the whole pipeline ---------------------
def count(app, model, *where):
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def get_ticket(app, number):
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        s.expunge(t)
        return t


def test_set_on_follow_up_only_applies_to_follow_ups(conf_dir, make_app):
    write_rules(conf_dir, """
    - name: escalate-replies
      match: {subject: 'disk'}
      set: {queue: Hardware}
      set_on_follow_up: {priority: 5 very high, dynamic_fields: {Replied: "yes"}}
    """)
    app = make_app()
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    def ingest(raw):
        accepted = accept(app.store, raw, Envelope())
        return process_inbound(app.store, app.pipeline, accepted.inbound_id)

    first = ingest(mail(subject="disk dead", msgid="f1@customer.test"))
    t = get_ticket(app, first.ticket_number)
    assert t.queue == "Hardware" and t.priority == "3 normal" and not t.dynamic_fields
    second = ingest(mail(subject=f"Re: [Ticket#{t.number}] disk dead",
                         msgid="f2@customer.test"))
    assert second.action == "follow_up" and second.ticket_number == t.number
    t = get_ticket(app, t.number)
    assert t.priority == "5 very high" and t.dynamic_fields == {"Replied": "yes"}


def test_ignore_stores_inbound_as_ignored_and_makes_no_ticket(conf_dir, make_app):
    write_rules(conf_dir, """
    - name: drop-newsletters
      match: {subject: 'newsletter'}
      set: {ignore: yes}
    - name: never-reached
      match: {subject: '.'}
      set: {queue: QA}
    """)
    app = make_app()
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    accepted = accept(app.store, mail(subject="Weekly Newsletter"), Envelope())
    out = process_inbound(app.store, app.pipeline, accepted.inbound_id)
    assert out.status == "ignored" and out.action == "ignore" and out.ticket_number is None
    assert count(app, Ticket) == 0
    with app.store.session() as s:
        row = s.get(InboundMail, accepted.inbound_id)
        assert row.status == "ignored"
        assert any("drop-newsletters" in line["message"] for line in row.trace)
        assert not any("never-reached" in line["message"] for line in row.trace)


def test_follow_up_false_forces_a_new_ticket(conf_dir, make_app):
    write_rules(conf_dir, """
    - name: alerts-always-new
      match: {from: '@monitoring\\.test$'}
      set: {follow_up: no}
    """)
    app = make_app()
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    def ingest(raw):
        return process_inbound(app.store, app.pipeline,
                               accept(app.store, raw, Envelope()).inbound_id)

    first = ingest(mail(frm="a@monitoring.test", msgid="a1@monitoring.test"))
    again = ingest(mail(frm="a@monitoring.test", subject=f"Re: [Ticket#{first.ticket_number}]",
                        msgid="a2@monitoring.test"))
    assert again.action == "new_ticket" and again.ticket_number != first.ticket_number
    human = ingest(mail(subject=f"Re: [Ticket#{first.ticket_number}]", msgid="h1@c.test"))
    assert human.action == "follow_up" and human.ticket_number == first.ticket_number


def test_filter_settings_reach_the_ticket(conf_dir, make_app):
    write_rules(conf_dir, """
    - name: vip
      match: {from: '@bigcorp\\.test$', subject: '^(?P<what>.+)$'}
      set:
        queue: VIP
        priority: 4 high
        state: open
        type: incident
        owner: mlee
        responsible: jdoe
        lock: yes
        customer_id: BIGCORP
        title: "VIP: ${subject.what}"
        dynamic_fields: {Tier: gold}
    """)
    app = make_app()
    from gateway.intake import Envelope, accept
    from gateway.processing import process_inbound

    out = process_inbound(app.store, app.pipeline,
                          accept(app.store, mail(frm="ceo@bigcorp.test", subject="Coffee"),
                                 Envelope()).inbound_id)
    t = get_ticket(app, out.ticket_number)
    assert (t.queue, t.priority, t.state, t.type, t.owner, t.responsible, t.locked,
            t.customer_id, t.title, t.dynamic_fields) == (
        "VIP", "4 high", "open", "incident", "mlee", "jdoe", True, "BIGCORP", "VIP: Coffee",
        {"Tier": "gold"})


# ---- trusted control headers (filters/builtin/trusted_headers.py) ----------------------------
def test_x_ticket_queue_honoured_only_from_trusted_source(app, ingest):
    raw = mail(headers={"X-Ticket-Queue": "QA"})
    trusted = ingest(raw, trusted=True)
    assert get_ticket(app, trusted.ticket_number).queue == "QA"
    untrusted = ingest(mail(headers={"X-Ticket-Queue": "QA"}), trusted=False)
    assert get_ticket(app, untrusted.ticket_number).queue == "Unassigned"


# ---- hostile regexes and big mails ------------------------------------------------------------
def test_matching_is_capped_by_length(conf_dir):
    (conf_dir / "filters.yaml").write_text("limits: {max_body_chars: 1000, "
                                           "max_header_chars: 50}\n")
    engine = engine_for(conf_dir, """
    - name: late-word
      match: {body: 'needle'}
      set: {type: body}
    - name: late-header
      match: {X-Long: 'needle'}
      set: {title: header}
    """)
    raw = mail(body="x" * 2000 + " needle", headers={"X-Long": "y" * 100 + " needle"})
    assert run(engine, raw).settings == {}
    raw = mail(body="needle " + "x" * 2000, headers={"X-Long": "needle"})
    assert run(engine, raw).settings == {"type": "body", "title": "header"}


@pytest.mark.skipif(not safe_regex.HAS_TIMEOUT, reason="needs the regex package")
def test_slow_regex_times_out_rule_named_process_survives(conf_dir):
    # not a nested quantifier, so it passes the load-time check, but it backtracks a lot
    engine = engine_for(conf_dir, """
    - name: slow-one
      match: {body: '(x+x+)y'}
      set: {queue: QA}
    - name: fine
      match: {subject: 'hello'}
      set: {type: ok}
    """)
    engine.limits.match_timeout = 0.05
    started = time.monotonic()
    out = run(engine, mail(subject="hello", body="x" * 60000))
    assert time.monotonic() - started < 5
    [timed] = [t for t in out.trace if t.get("timed_out")]
    assert timed["rule"] == "slow-one" and "timed out" in timed["message"]
    assert "queue" not in out.settings
    assert out.settings["type"] == "ok"


@pytest.mark.skipif(not safe_regex.HAS_TIMEOUT, reason="needs the regex package")
def test_timeout_is_reported_not_raised(conf_dir):
    engine = engine_for(conf_dir, """
    - name: exponential
      match: {body: 'a'}
      set: {queue: QA}
    """)
    # bypass the load check on purpose: the engine must still survive a catastrophic regex
    import regex

    engine.rules[0].conditions[0].regex = regex.compile(r"(a|aa)+$")
    engine.limits.match_timeout = 0.05
    started = time.monotonic()
    out = run(engine, mail(body="a" * 40 + "!"))
    assert time.monotonic() - started < 3
    [line] = [t for t in out.trace if t.get("timed_out")]
    assert line["rule"] == "exponential" and out.settings == {}


def test_mail_budget_skips_remaining_rules(conf_dir):
    engine = engine_for(conf_dir, """
    - name: a
      match: {subject: 'x'}
      set: {title: a}
    - name: b
      match: {subject: 'x'}
      set: {type: b}
    """)
    engine.limits.mail_budget = 1e-9
    out = run(engine, mail(subject="x"))
    assert any(t.get("skipped") for t in out.trace)


def test_engine_on_mail_without_headers_or_body():
    from filters.engine import FilterEngine

    assert FilterEngine([]).run(parse(b"")).settings == {}
    assert FilterEngine([]).run(parse(b"\x00\xff garbage")).trace
