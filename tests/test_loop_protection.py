"""Mail loops end: never an auto-response to auto-submitted mail (RFC 3834), and at most
``outbound.auto_response_limit`` auto-responses per address per 24 h whatever the other side
does. Two ticketgate instances mailing each other, and ticketgate against a naive vacation
responder, all through a real aiosmtpd smarthost sink."""
from __future__ import annotations

import email
import shutil
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app import open_app
from notifier import loopguard
from notifier.outbound import delivery
from gateway.store.models import OutboundMail
from tests.conftest import CONF
from tests.mails import make_mail
from tests.test_autoresponse import ingest_into

STRIP = ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "X-Ticketgate-Loop")


def instance(tmp_path: Path, name: str, port: int, limit: int, system_id: str):
    """A ticketgate with its own conf/ (addresses @NAME.test, fqdn helpdesk.NAME.test)."""
    conf = tmp_path / f"conf-{name}"
    shutil.copytree(CONF, conf)
    for path in conf.glob("*.yaml"):
        text = path.read_text().replace("@example.com", f"@{name}.test") \
            .replace("helpdesk.example.com", f"helpdesk.{name}.test") \
            .replace('system_id: "10"', f'system_id: "{system_id}"')
        path.write_text(text)
    path = conf / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: {port}, "
                                       f"auto_response_limit: {limit}}}\n")
    return open_app(conf, database=f"sqlite:///{tmp_path / (name + '.db')}")


def auto_responses(app) -> int:
    with app.store.session() as s:
        return s.execute(select(func.count()).select_from(OutboundMail).where(
            OutboundMail.kind.in_(loopguard.AUTO_KINDS))).scalar_one()


def take(handler, domain: str, seen: set, app=None) -> list[bytes]:
    """Mails the sink got for ``domain`` (``app``'s system addresses) since the last call."""
    out = []
    for i, env in enumerate(handler.envelopes):
        if i not in seen and any(r.endswith("@" + domain) and
                                 (app is None or app.config.system_address(r))
                                 for r in env.rcpt_tos):
            seen.add(i)
            out.append((env.content, env.mail_from, env.rcpt_tos))
    return out


def strip(raw: bytes) -> bytes:
    msg = email.message_from_bytes(raw, policy=policy.SMTP)
    for header in STRIP:
        del msg[header]
    return msg.as_bytes()


def ping_pong(a, b, handler, rounds: int, transform=lambda raw: raw) -> int:
    """Deliver A's outgoing mail to B and B's to A until nothing flows; returns rounds used."""
    seen: set = set()
    for n in range(rounds):
        delivery.drain(a.store, a.config)
        delivery.drain(b.store, b.config)
        moved = 0
        for target, domain in ((b, "b.test"), (a, "a.test")):
            for raw, mail_from, rcpts in take(handler, domain, seen, target):
                ingest_into(target, transform(raw), mail_from=mail_from, rcpt_to=rcpts)
                moved += 1
        if not moved:
            return n
    return rounds


@pytest.fixture
def pair(tmp_path, smtp_sink):
    controller, handler = smtp_sink
    a = instance(tmp_path, "a", controller.port, 5, "10")
    b = instance(tmp_path, "b", controller.port, 5, "20")
    yield a, b, handler
    a.store.close()
    b.store.close()


def start(a):
    """A mail to A that claims to come from B's help desk address (spoofed or misrouted)."""
    ingest_into(a, make_mail(frm="B Help Desk <support@b.test>", to="support@a.test",
                             subject="Cannot log in"))


def test_two_instances_stop_at_once_on_auto_submitted(pair):
    a, b, handler = pair
    start(a)
    rounds = ping_pong(a, b, handler, 50)
    assert rounds <= 2
    assert auto_responses(a) == 1          # A answered the first mail once
    assert auto_responses(b) == 0          # B saw Auto-Submitted + loop header: silence
    with b.store.session() as s:
        from gateway.store.models import History

        assert s.execute(select(History).where(History.type == "AutoResponse",
                                               History.message.like("%suppressed%"))).first()


def test_two_instances_stop_within_the_limit_when_a_relay_strips_the_headers(pair):
    a, b, handler = pair
    start(a)
    rounds = ping_pong(a, b, handler, 100, transform=strip)
    assert rounds < 100
    assert 1 <= auto_responses(a) <= 5 and 1 <= auto_responses(b) <= 5
    with a.store.session() as s:
        from gateway.store.models import History

        assert s.execute(select(History).where(
            History.message.like("%loop protection%"))).first() is not None


def test_naive_vacation_responder_is_answered_at_most_limit_times(conf_dir, make_app,
                                                                  smtp_sink):
    controller, handler = smtp_sink
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                       f"{controller.port}, auto_response_limit: 4}}\n")
    app = make_app()
    ingest_into(app, make_mail(frm="Vacationer <away@customer.test>", subject="Cannot log in"))
    seen: set = set()
    replies = 0
    for _ in range(30):
        delivery.drain(app.store, app.config)
        got = take(handler, "customer.test", seen)
        if not got:
            break
        for raw, _, _ in got:   # "I am away" to everything, no RFC 3834 headers at all
            original = email.message_from_bytes(raw, policy=policy.default)
            reply = make_mail(frm="Vacationer <away@customer.test>",
                              subject=f"Re: {original['Subject']}",
                              body="I am on vacation until Monday.",
                              in_reply_to=original["Message-ID"].strip("<>"))
            ingest_into(app, reply)
            replies += 1
    assert auto_responses(app) == 4
    assert replies == 4
    with app.store.session() as s:
        from gateway.store.models import History

        assert s.execute(select(History).where(
            History.message.like("%loop protection: 4 mails to away@customer.test%"))
        ).first() is not None


def test_limit_counts_only_the_last_24_hours(app):
    from datetime import timedelta

    from gateway.store.models import utcnow

    with app.store.session() as s:
        for age in (1, 23, 25, 30):
            s.add(OutboundMail(kind="auto_reply", mail_from="support@example.com",
                               rcpt_to=["x@customer.test"], rcpt_key="x@customer.test",
                               message_id=f"{age}@h", subject="", raw=b"", status="sent",
                               attempts=1, next_attempt=utcnow(),
                               created=utcnow() - timedelta(hours=age)))
    with app.store.session() as s:
        assert loopguard.sent_recently(s, "X@Customer.test") == 2


# ---- issue 11 point 10: an agent's vacation responder and a customer's, both naive ----------
def vacation_pair(conf_dir, make_app, smtp_sink, agent_subject: str, extra: str = ""):
    """A help desk with reply-address tokens (an agent's responder proves the agent), a
    customer mail, then: every mail to the agent is answered by the agent's vacation responder
    (to the Reply-To, as a header-stripping one does), every mail to the customer by the
    customer's. Returns how many mails the help desk sent in all, and how many history lines
    say the loop guard held one back."""
    from tests.test_agent_identity import TOM, add_agent_auth

    controller, handler = smtp_sink
    add_agent_auth(conf_dir)
    path = conf_dir / "ticketgate.yaml"
    path.write_text(path.read_text() + f"\noutbound: {{host: 127.0.0.1, port: "
                                       f"{controller.port}, auto_response_limit: 4{extra}}}\n")
    app = make_app()
    agent_addresses = {e for a in app.config.agents.values() for e in a.emails}
    ingest_into(app, make_mail(frm="Alice <alice@customer.test>", subject="Printer burns"))
    seen: set = set()
    for _ in range(60):
        delivery.drain(app.store, app.config)
        new = [(i, env) for i, env in enumerate(handler.envelopes) if i not in seen]
        if not new:
            break
        for i, env in new:
            seen.add(i)
            original = email.message_from_bytes(env.content, policy=policy.default)
            rcpt = env.rcpt_tos[0].lower()
            if rcpt in agent_addresses:   # the agent's responder answers the Reply-To
                to = str(original["Reply-To"] or original["From"])
                frm = TOM if rcpt.startswith("tom") else f"Agent <{rcpt}>"
                subject = agent_subject.format(subject=original["Subject"])
            else:
                to, frm = str(original["From"]), "Alice <alice@customer.test>"
                subject = f"Re: {original['Subject']}"
            reply = make_mail(frm=frm, to=to, subject=subject,
                              body="I am on vacation until Monday.",
                              in_reply_to=original["Message-ID"].strip("<>"))
            ingest_into(app, reply, mail_from=frm, rcpt_to=[to])
    sent = len(handler.envelopes)
    with app.store.session() as s:
        from gateway.store.models import History

        held = s.execute(select(func.count()).select_from(History).where(
            History.message.like("%loop protection%"))).scalar_one()
    app.store.close()
    return sent, held


def test_agent_vacation_reply_with_a_vacation_subject_is_no_agent_reply(conf_dir, make_app,
                                                                         smtp_sink):
    # stripped of every RFC 3834 header, but with the subject Exchange gives it
    sent, held = vacation_pair(conf_dir, make_app, smtp_sink, "Automatic reply: {subject}")
    assert sent <= 8, sent    # 1 auto-reply, 3 + 3 notifications: nothing more
    assert held == 0          # stopped by the heuristics, not by the limit


def test_agent_and_customer_responders_without_any_marks_stop_at_the_limit(conf_dir, make_app,
                                                                           smtp_sink):
    # nothing tells these replies from a human's: only the per-address limit stops them
    # (each of the three notified agents' responders answers with its own token)
    sent, held = vacation_pair(conf_dir, make_app, smtp_sink, "Re: {subject}",
                               ", ticket_mail_limit: 4")
    assert sent <= 1 + 3 * 4 + 4, sent   # auto-reply, 4 per agent, agent replies up to 4
    assert held >= 1


def test_the_default_ticket_mail_limit_ends_the_loop_too(conf_dir, make_app, smtp_sink):
    sent, held = vacation_pair(conf_dir, make_app, smtp_sink, "Re: {subject}")
    assert sent <= 1 + 3 * 20 + 20, sent
    assert held >= 1
