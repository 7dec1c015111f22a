"""Proof of an agent's identity: reply-address token, DKIM, Authentication-Results of our MTA,
SMTP AUTH; without a proof an agent's From is a customer mail flagged in the history.

Also holds the helpers the other tests/test_agent_*.py files import (agent_app, outbox...).
"""
from __future__ import annotations

import base64
import subprocess

import pytest
from sqlalchemy import select

from gateway.app import load_config
from gateway.config import ConfigError
from gateway.intake import Envelope
from gateway.mail import parse
from gateway.store.models import Ticket
from tests.mails import make_mail

AGENT_AUTH = """
agent_auth:
  methods: [token, dkim, authentication_results, smtp_auth]
  secret_file: agent.secret
  trusted_authserv_id: mx.example.com
  reply_address_format: "helpdesk+t{ticket}-{token}@example.com"
"""
TOM = "Tom Moore <tom.moore@example.com>"
TRUSTED_AR = "mx.example.com; dkim=pass header.d=example.com header.s=sel"


def add_agent_auth(conf_dir, text=AGENT_AUTH):
    (conf_dir / "agent.secret").write_text("s3cret-s3cret-s3cret-0123456789\n")
    with open(conf_dir / "ticketgate.yaml", "a") as f:
        f.write(text)


@pytest.fixture
def agent_app(conf_dir, make_app):
    add_agent_auth(conf_dir)
    return make_app()


class OutboundRows:
    """What the agent path queued in the real outbound table (agent replies and answers about
    refused commands; auto-responses and notifications are other tests' business)."""

    KINDS = ("agent_reply", "agent_command_answer")

    def __init__(self, db_url):
        self.db_url = db_url

    @property
    def queued(self) -> list[dict]:
        from email import message_from_bytes, policy

        from gateway.store.db import open_store
        from gateway.store.models import OutboundMail

        store = open_store(self.db_url, run_migrations=False)
        try:
            with store.read_session() as s:
                rows = s.execute(select(OutboundMail).where(OutboundMail.kind.in_(self.KINDS))
                                 .order_by(OutboundMail.id)).scalars().all()
                return [dict(message=message_from_bytes(r.raw, policy=policy.default),
                             mail_from=r.mail_from, rcpt_to=list(r.rcpt_to),
                             ticket_id=r.ticket_id, article_id=r.article_id, kind=r.kind)
                        for r in rows]
        finally:
            store.close()

    def of_kind(self, kind):
        return [q for q in self.queued if q["kind"] == kind]


@pytest.fixture
def outbox(db_url):
    return OutboundRows(db_url)


def ingest_with(app, raw, **envelope):
    from gateway.intake import accept
    from gateway.processing import process_inbound

    accepted = accept(app.store, raw if isinstance(raw, bytes) else raw.encode(),
                      Envelope(**envelope))
    return process_inbound(app.store, app.pipeline, accepted.inbound_id)


def run_pipeline(app, raw, envelope=None):
    """decide + apply directly (for envelope fields the inbound table does not keep)."""
    with app.store.session() as s:
        decision = app.pipeline.decide(s, parse(raw), envelope or Envelope())
        ticket, _ = app.pipeline.apply(s, decision, None)
        return decision, ticket.number


def load_ticket(app, number) -> Ticket:
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        t.articles, t.history  # noqa: B018 - load while the session is open
        return t


def last_in(ticket):
    """The newest incoming article (the notifier adds outgoing system articles after it)."""
    return [a for a in ticket.articles if a.direction == "in"][-1]


def customer_ticket(app, subject="Need help"):
    out = ingest_with(app, make_mail(subject=subject, body="It burns."))
    assert load_ticket(app, out.ticket_number).queue == "Unassigned"
    assert out.action == "new_ticket"
    return load_ticket(app, out.ticket_number)


def reply_address(app, login, ticket_id):
    return app.config.agent_auth.reply_address(login, ticket_id)


def agent_mail(ticket, body="Hello, fixed.", frm=TOM, **kw):
    kw.setdefault("subject", f"Re: [Ticket#{ticket.number}] {ticket.title}")
    return make_mail(frm=frm, body=body, **kw)


# ---- configuration ----------------------------------------------------------------------------
def test_agent_auth_config_errors_name_file_and_line(conf_dir):
    add_agent_auth(conf_dir, """
agent_auth:
  methods: [token, carrier_pigeon, authentication_results]
  secret_env: TICKETGATE_NO_SUCH_VARIABLE
  reply_address_format: "helpdesk@example.com"
  colour: blue
""")
    with pytest.raises(ConfigError) as exc:
        load_config(conf_dir)
    text = str(exc.value)
    assert "ticketgate.yaml:" in text
    assert "carrier_pigeon" in text
    assert "unknown key 'colour'" in text
    assert "TICKETGATE_NO_SUCH_VARIABLE" in text
    assert "{ticket} and {token}" in text
    assert "needs trusted_authserv_id" in text


def test_agent_auth_secret_from_environment(conf_dir, monkeypatch):
    monkeypatch.setenv("TG_AGENT_SECRET", "0123456789abcdef0123")
    add_agent_auth(conf_dir, AGENT_AUTH.replace("secret_file: agent.secret",
                                                "secret_env: TG_AGENT_SECRET"))
    config = load_config(conf_dir)
    assert config.agent_auth.secret == b"0123456789abcdef0123"
    address = config.agent_auth.reply_address("tmoore", 42)
    assert address.startswith("helpdesk+t42-") and address.endswith("@example.com")
    assert config.agent_auth.reply_tokens([address.upper()])[0][0] == 42


def test_without_agent_auth_no_agent_is_believed(app, ingest):
    first = ingest(make_mail(subject="Need help"))
    out = ingest(make_mail(subject=f"Re: [Ticket#{first.ticket_number}]", frm=TOM,
                           headers={"Authentication-Results": TRUSTED_AR}))
    t = load_ticket(app, out.ticket_number)
    assert last_in(t).sender_type == "customer"
    assert any(h.type == "AgentClaimUnproven" for h in t.history)


# ---- spoofed From -----------------------------------------------------------------------------
def test_spoofed_agent_from_is_customer_article_flagged(agent_app, outbox):
    t = customer_ticket(agent_app)
    out = ingest_with(agent_app, agent_mail(t, body="#state closed successful\n\nDone."))
    t = load_ticket(agent_app, out.ticket_number)
    article = last_in(t)
    assert article.sender_type == "customer"
    assert t.state != "closed successful"          # no agent rights: the command did nothing
    flagged = [h for h in t.history if h.type == "AgentClaimUnproven"]
    assert flagged[0].message == ("claims to be agent tmoore but proves nothing: handled as "
                                  "customer")
    assert any("dkim: no DKIM-Signature" in f for f in flagged[0].data["failures"])
    assert outbox.queued == []
    assert t.first_agent_contact is None and t.first_response_due is not None


# ---- token ------------------------------------------------------------------------------------
def test_token_in_reply_address_proves_agent(agent_app, outbox):
    t = customer_ticket(agent_app)
    out = ingest_with(agent_app, agent_mail(t, to=reply_address(agent_app, "tmoore", t.id)))
    t = load_ticket(agent_app, out.ticket_number)
    assert last_in(t).sender_type == "agent"
    inbound_trace = [h for h in t.history if h.type == "FollowUp"][0].data["trace"]
    assert any(line["step"] == "identity" and "proven by token" in line["message"]
               for line in inbound_trace)


def test_reply_address_alone_finds_the_ticket(agent_app, outbox):
    t = customer_ticket(agent_app)
    raw = make_mail(frm=TOM, subject="Re: your printer", body="On it.",
                    to=reply_address(agent_app, "tmoore", t.id))
    out = ingest_with(agent_app, raw)
    assert out.action == "follow_up" and out.ticket_number == t.number
    assert last_in(load_ticket(agent_app, t.number)).sender_type == "agent"


def test_token_for_ticket_a_used_on_ticket_b_is_refused(agent_app, outbox):
    a = customer_ticket(agent_app, "first")
    b = customer_ticket(agent_app, "second")
    out = ingest_with(agent_app, agent_mail(b, to=reply_address(agent_app, "tmoore", a.id),
                                            body="#priority 5\n\nhi"))
    assert out.ticket_number == b.number
    b = load_ticket(agent_app, b.number)
    assert last_in(b).sender_type == "customer"
    assert b.priority == "3 normal"
    flagged = [h for h in b.history if h.type == "AgentClaimUnproven"][0]
    assert any(f"token for ticket id {a.id} used on ticket id {b.id}: refused" in f
               for f in flagged.data["failures"])


def test_token_of_a_ticket_merged_into_this_one_still_proves(agent_app, outbox):
    a = customer_ticket(agent_app, "first")
    b = customer_ticket(agent_app, "second")
    with agent_app.store.session() as s:
        old = s.get(Ticket, a.id)
        old.merged_into_id, old.state = b.id, "merged"
    for raw in (agent_mail(a, to=reply_address(agent_app, "tmoore", a.id)),   # subject of A
                make_mail(frm=TOM, subject="Re: hi", body="ok",                # address only
                          to=reply_address(agent_app, "tmoore", a.id))):
        out = ingest_with(agent_app, raw)
        assert out.ticket_number == b.number
        assert last_in(load_ticket(agent_app, b.number)).sender_type == "agent"


def test_another_agents_token_or_a_forged_one_proves_nothing(agent_app, outbox):
    t = customer_ticket(agent_app)
    for to in (reply_address(agent_app, "jdoe", t.id),          # Jane's token, Tom's From
               f"helpdesk+t{t.id}-0123456789abcdef@example.com"):  # guessed
        out = ingest_with(agent_app, agent_mail(t, to=to))
        assert last_in(load_ticket(agent_app, out.ticket_number)).sender_type == "customer"


# ---- DKIM -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    return path.read_bytes(), record


def dkim_signed(raw, key, domain=b"example.com",
               headers=(b"from", b"to", b"subject", b"message-id"), length=False):
    import dkim

    sig = dkim.sign(raw, b"sel", domain, key, include_headers=list(headers), length=length)
    return sig + raw


def with_dns(app, record, domain="example.com"):
    def dnsfunc(name, timeout=5):
        return record if name.decode().rstrip(".") == f"sel._domainkey.{domain}" else None

    app.config.agent_auth.dnsfunc = dnsfunc


def test_dkim_pass_of_agent_domain_proves_agent(agent_app, outbox, dkim_key):
    key, record = dkim_key
    with_dns(agent_app, record)
    t = customer_ticket(agent_app)
    decision, _ = run_pipeline(agent_app, dkim_signed(agent_mail(t), key))
    assert decision.sender_type == "agent" and decision.agent == "tmoore"
    assert any("proven by dkim" in line.message for line in decision.trace)


def test_dkim_broken_by_tampering_proves_nothing(agent_app, outbox, dkim_key):
    key, record = dkim_key
    with_dns(agent_app, record)
    t = customer_ticket(agent_app)
    raw = dkim_signed(agent_mail(t, body="Close it."), key).replace(b"Close it.", b"Send $$$.")
    decision, _ = run_pipeline(agent_app, raw)
    assert decision.sender_type == "customer"
    assert "does not verify" in " ".join(decision.flags["agent_claim"]["failures"])


def test_dkim_of_another_domain_proves_nothing(agent_app, outbox, dkim_key):
    key, record = dkim_key
    with_dns(agent_app, record, "attacker.test")
    t = customer_ticket(agent_app)
    decision, _ = run_pipeline(agent_app, dkim_signed(agent_mail(t), key, b"attacker.test"))
    assert decision.sender_type == "customer"
    assert "d=attacker.test, not example.com" in " ".join(
        decision.flags["agent_claim"]["failures"])


@pytest.mark.parametrize("headers, length, why", [
    ((b"from", b"to", b"message-id"), False, "does not cover subject"),
    ((b"from", b"to", b"subject"), True, "l= (body length): not accepted"),
])
def test_dkim_signature_must_cover_what_picks_the_ticket(agent_app, outbox, dkim_key, headers,
                                                         length, why):
    key, record = dkim_key
    with_dns(agent_app, record)
    t = customer_ticket(agent_app)
    decision, _ = run_pipeline(agent_app, dkim_signed(agent_mail(t), key, headers=headers,
                                                      length=length))
    assert decision.sender_type == "customer"
    assert why in " ".join(decision.flags["agent_claim"]["failures"])


# ---- Authentication-Results ---------------------------------------------------------------------
@pytest.mark.parametrize("headers, agent", [
    ([TRUSTED_AR], True),
    (["mx.example.com 1; dmarc=pass (p=reject) header.from=example.com"], True),
    (["evil.example.net; dkim=pass header.d=example.com"], False),          # not our MTA
    (["mx.example.com; dkim=pass header.d=other.example"], False),          # other domain
    (["mx.example.com; dkim=fail header.d=example.com", TRUSTED_AR], False),  # only topmost
    (["evil.example.net; dkim=fail", TRUSTED_AR], True),                    # others ignored
])
def test_authentication_results_only_of_our_mta(agent_app, outbox, headers, agent):
    t = customer_ticket(agent_app)
    raw = agent_mail(t)
    head, body = raw.split(b"\r\n\r\n", 1)
    extra = b"".join(b"Authentication-Results: " + h.encode() + b"\r\n" for h in headers)
    decision, _ = run_pipeline(agent_app, extra + head + b"\r\n\r\n" + body,
                               Envelope(source="lmtp:postfix", trust_authentication_results=True))
    assert (decision.sender_type == "agent") is agent


# ---- issue 11 point 11: Authentication-Results only from a source whose MTA strips them -------
@pytest.mark.parametrize("source", ["smtp:mx", "pipe", "imap:helpdesk"])
def test_forged_authentication_results_prove_nothing_on_an_unmarked_source(agent_app, outbox,
                                                                           source):
    t = customer_ticket(agent_app)
    raw = agent_mail(t, body="#state closed successful\n\nDone.",
                     headers={"Authentication-Results": TRUSTED_AR})
    out = ingest_with(agent_app, raw, source=source)
    t = load_ticket(agent_app, out.ticket_number)
    assert last_in(t).sender_type == "customer" and t.state != "closed successful"
    claim = last_in(t).flags["agent_claim"]
    assert any("not marked trust_authentication_results" in f for f in claim["failures"])


def test_trust_authentication_results_survives_the_inbound_table(agent_app, outbox):
    t = customer_ticket(agent_app)
    raw = agent_mail(t, headers={"Authentication-Results": TRUSTED_AR})
    out = ingest_with(agent_app, raw, source="lmtp:postfix", trust_authentication_results=True)
    assert last_in(load_ticket(agent_app, out.ticket_number)).sender_type == "agent"


def test_listener_key_trust_authentication_results_defaults_to_no(conf_dir):
    from tests.conftest import configure_daemon

    configure_daemon(conf_dir, listeners=["{name: mx, port: 2525}",
                                          "{name: pf, protocol: lmtp, port: 2526, "
                                          "trust_authentication_results: yes}"])
    config = load_config(conf_dir)
    assert [(lc.name, lc.trust_authentication_results) for lc in config.listeners] == \
        [("mx", False), ("pf", True)]


# ---- SMTP AUTH ----------------------------------------------------------------------------------
@pytest.mark.parametrize("user, agent", [("tmoore", True), ("tom.moore@example.com", True),
                                         ("jdoe", False), (None, False)])
def test_smtp_auth_user_must_be_the_agent(agent_app, outbox, user, agent):
    t = customer_ticket(agent_app)
    decision, _ = run_pipeline(agent_app, agent_mail(t),
                               Envelope(source="smtp:submission", authenticated_user=user))
    assert (decision.sender_type == "agent") is agent


def test_methods_not_listed_are_not_tried(conf_dir, make_app, outbox):
    add_agent_auth(conf_dir, AGENT_AUTH.replace(
        "[token, dkim, authentication_results, smtp_auth]", "[smtp_auth]"))
    app = make_app()
    t = customer_ticket(app)
    raw = agent_mail(t, headers={"Authentication-Results": TRUSTED_AR},
                     to=reply_address(app, "tmoore", t.id))
    decision, _ = run_pipeline(app, raw)
    assert decision.sender_type == "customer"


def test_smtp_auth_survives_the_inbound_table(agent_app, outbox):
    t = customer_ticket(agent_app)
    out = ingest_with(agent_app, agent_mail(t), source="smtp:submission",
                      authenticated_user="tmoore")
    assert last_in(load_ticket(agent_app, out.ticket_number)).sender_type == "agent"
