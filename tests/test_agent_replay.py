"""Replays (issue 11 point 13): a genuine agent mail, DKIM-signed or sent to a token reply
address, re-sent by someone else acts once only; reply-address tokens can expire."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.agents.identity import make_token
from gateway.store.models import AppliedAgentMail
from tests.test_agent_identity import (AGENT_AUTH, add_agent_auth, agent_app,  # noqa: F401
                                       agent_mail, customer_ticket, dkim_key, dkim_signed,
                                       ingest_with, last_in, load_ticket, outbox,
                                       reply_address, with_dns)


def resent(raw: bytes) -> bytes:
    """What an outsider who got a copy sends: the same mail with a header of their own on top
    (outside the signature, so DKIM still passes; a new inbound mail, not a duplicate)."""
    return b"X-Forwarded-For-Fun: yes\r\n" + raw


def applied(app) -> int:
    with app.store.read_session() as s:
        return s.execute(select(func.count()).select_from(AppliedAgentMail)).scalar_one()


@pytest.mark.parametrize("proof", ["dkim", "token"])
def test_a_re_sent_agent_mail_does_not_act_again(agent_app, outbox, dkim_key, proof):
    t = customer_ticket(agent_app)
    if proof == "dkim":
        key, record = dkim_key
        with_dns(agent_app, record)

        def send(body):
            return dkim_signed(agent_mail(t, body=body), key)
    else:
        def send(body):
            return agent_mail(t, body=body, to=reply_address(agent_app, "tmoore", t.id))
    first = send("#priority 5 very high\n\nWe are on it.")
    out = ingest_with(agent_app, first)
    assert load_ticket(agent_app, out.ticket_number).priority == "5 very high"
    ingest_with(agent_app, send("#priority 1 very low\n\nFixed."))
    assert load_ticket(agent_app, out.ticket_number).priority == "1 very low"
    assert len(outbox.of_kind("agent_reply")) == 2 and applied(agent_app) == 2

    out = ingest_with(agent_app, resent(first))          # the replay
    t = load_ticket(agent_app, out.ticket_number)
    assert t.priority == "1 very low"                      # not set back
    article = last_in(t)
    assert article.sender_type == "agent" and article.internal   # kept, as a note
    assert len(outbox.of_kind("agent_reply")) == 2         # the customer gets nothing again
    assert any(h.type == "AddNote" and "replay" in h.message for h in t.history)
    assert applied(agent_app) == 2


def test_an_agent_mail_without_message_id_runs_no_commands(agent_app, outbox):
    t = customer_ticket(agent_app)
    raw = agent_mail(t, body="#priority 5 very high\n\nOn it.",
                     to=reply_address(agent_app, "tmoore", t.id))
    raw = b"\r\n".join(line for line in raw.split(b"\r\n")
                       if not line.lower().startswith(b"message-id:"))
    out = ingest_with(agent_app, raw)
    t = load_ticket(agent_app, out.ticket_number)
    assert t.priority == "3 normal" and outbox.of_kind("agent_reply") == []
    assert any("no Message-ID" in h.message for h in t.history)


@pytest.fixture
def expiring_app(conf_dir, make_app):
    add_agent_auth(conf_dir, AGENT_AUTH + "  token_max_age_days: 30\n")
    return make_app()


def test_tokens_expire_after_token_max_age_days(expiring_app, outbox):
    app = expiring_app
    auth = app.config.agent_auth
    t = customer_ticket(app)
    fresh = reply_address(app, "tmoore", t.id)
    today = int(fresh.split("-", 1)[1][:4], 16)
    old = auth.reply_address_format.format(
        ticket=t.id, token=make_token(auth, "tmoore", t.id, day=today - 31))
    out = ingest_with(app, agent_mail(t, body="#priority 5 very high\n\nOn it.", to=old))
    t = load_ticket(app, out.ticket_number)
    assert last_in(t).sender_type == "customer" and t.priority == "3 normal"
    assert "expired" in " ".join(last_in(t).flags["agent_claim"]["failures"])

    recent = auth.reply_address_format.format(
        ticket=t.id, token=make_token(auth, "tmoore", t.id, day=today - 29))
    out = ingest_with(app, agent_mail(t, body="#priority 5 very high\n\nOn it.", to=recent))
    assert load_ticket(app, out.ticket_number).priority == "5 very high"


def test_a_token_without_its_day_is_refused_once_tokens_expire(expiring_app, outbox):
    from dataclasses import replace

    app = expiring_app
    auth = app.config.agent_auth
    t = customer_ticket(app)
    ageless = replace(auth, token_max_age_days=0)   # a token sent before expiry was turned on
    to = ageless.reply_address("tmoore", t.id)
    out = ingest_with(app, agent_mail(t, body="#priority 5 very high\n\nOn it.", to=to))
    assert last_in(load_ticket(app, out.ticket_number)).sender_type == "customer"


def test_token_max_age_days_is_checked(conf_dir):
    from gateway.app import load_config
    from gateway.config import ConfigError

    add_agent_auth(conf_dir, AGENT_AUTH + "  token_max_age_days: -1\n")
    with pytest.raises(ConfigError, match="token_max_age_days"):
        load_config(conf_dir)
