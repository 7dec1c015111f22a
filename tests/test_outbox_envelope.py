"""The outbound queue's envelopes and leases, against real aiosmtpd sinks: IDN domains go out as
IDNA 2008 A-labels, a non-ASCII local part uses SMTPUTF8 when the smarthost offers it and
fails that one mail (recorded on the ticket) when it does not, an address that cannot be sent
never stops the batch; a result is recorded only under the claim that still owns the row, and
a batch that takes longer than the lease keeps its rows."""
from __future__ import annotations

import asyncio
import email
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from gateway.store.models import OutboundMail, Ticket
from notifier import message
from notifier.outbound import delivery, queue
from tests.conftest import SinkHandler, free_port
from tests.mails import make_mail
from tests.test_autoresponse import ingest_into, use_sink


class RecordingSink(SinkHandler):
    """Keeps the envelope's MAIL options too (SMTPUTF8 or not)."""

    async def handle_DATA(self, server, session, envelope):
        envelope.utf8 = "SMTPUTF8" in [o.upper() for o in envelope.mail_options]
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink_factory():
    started = []

    def start(handler=None, **kwargs):
        handler = handler or RecordingSink()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return controller, handler

    yield start
    for controller in started:
        controller.stop()


def queue_to(app, addresses, ticket_id=None, smtputf8=False):
    """One queued mail per address (the envelope under test; the header stays ASCII). The
    address is put in the row as given, as rows queued before queue_mail encoded addresses
    hold it: delivery must encode (or refuse) it by itself."""
    with app.store.session() as session:
        for i, address in enumerate(addresses):
            msg = message.build(fqdn=app.config.fqdn, from_addr="support@example.com",
                                to=[(f"customer{i}@example.net", "Customer")],
                                subject=f"[Ticket#1] answer {i}", body="Hello\n",
                                auto_submitted=True)
            row = queue.queue_mail(session, msg, mail_from="support@example.com",
                                   rcpt_to=[f"customer{i}@example.net"], ticket_id=ticket_id,
                                   kind="auto_reply")
            row.rcpt_to, row.rcpt_key, row.smtputf8 = [address], address.lower(), smtputf8


def by_rcpt(app):
    with app.store.session() as s:
        return {r.rcpt_to[0]: r for r in s.execute(
            select(OutboundMail).where(OutboundMail.kind == "auto_reply")
            .order_by(OutboundMail.id)).scalars()}


def a_ticket(app) -> int:
    out = ingest_into(app, make_mail(subject="Cannot log in"))
    with app.store.session() as s:
        return s.execute(select(Ticket.id).where(Ticket.number == out.ticket_number)).scalar()


def history(app, ticket_id):
    with app.store.session() as s:
        return [(h.type, h.message) for h in s.get(Ticket, ticket_id).history]


AHEAD = ["a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org"]
BEHIND = ["x@example.org", "y@example.org", "z@example.org"]


def test_idn_domain_goes_out_as_its_a_label_and_utf8_local_part_fails_alone_without_smtputf8(
        conf_dir, make_app, sink_factory):
    controller, handler = sink_factory(enable_SMTPUTF8=False)
    use_sink(conf_dir, controller, ", batch: 20")
    app = make_app()
    tid = a_ticket(app)
    delivery.drain(app.store, app.config)
    handler.envelopes.clear()
    queue_to(app, AHEAD + ["kunde2@straße.de", "jörg@straße.de", "k@☃.de"] + BEHIND,
             ticket_id=tid)
    delivery.drain(app.store, app.config)
    rows = by_rcpt(app)
    assert rows["kunde2@straße.de"].status == "sent"
    assert rows["jörg@straße.de"].status == "failed"
    assert "SMTPUTF8" in rows["jörg@straße.de"].last_error
    assert rows["k@☃.de"].status == "failed" and "IDNA" in rows["k@☃.de"].last_error
    assert all(rows[a].status == "sent" for a in AHEAD + BEHIND)
    got = Counter(e.rcpt_tos[0] for e in handler.envelopes)
    assert got == Counter(AHEAD + BEHIND + ["kunde2@xn--strae-oqa.de"])
    notes = [text for kind, text in history(app, tid) if kind == "SendFailed"]
    assert any("jörg@straße.de" in n and "permanent" in n and "SMTPUTF8" in n for n in notes)
    # nothing goes out again, not even after the leases and backoffs would have ended
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    assert delivery.drain(app.store, app.config, now=later) == []
    assert len(handler.envelopes) == len(got)


def test_utf8_local_part_uses_smtputf8_when_offered(conf_dir, make_app, sink_factory):
    controller, handler = sink_factory()          # aiosmtpd offers SMTPUTF8 by default
    use_sink(conf_dir, controller)
    app = make_app()
    queue_to(app, ["jörg@straße.de", "kunde2@straße.de"])
    results = delivery.drain(app.store, app.config)
    assert [r.status for r in results] == ["sent", "sent"]
    envelopes = {e.rcpt_tos[0]: e for e in handler.envelopes}
    assert set(envelopes) == {"jörg@xn--strae-oqa.de", "kunde2@xn--strae-oqa.de"}
    assert envelopes["jörg@xn--strae-oqa.de"].utf8
    assert not envelopes["kunde2@xn--strae-oqa.de"].utf8   # plain ASCII needs no extension


def test_a_mail_marked_smtputf8_needs_the_extension(conf_dir, make_app, sink_factory):
    controller, handler = sink_factory(enable_SMTPUTF8=False)
    use_sink(conf_dir, controller)
    app = make_app()
    queue_to(app, ["plain@example.org"], smtputf8=True)
    queue_to(app, ["other@example.org"])
    delivery.drain(app.store, app.config)
    rows = by_rcpt(app)
    assert rows["plain@example.org"].status == "failed"
    assert rows["other@example.org"].status == "sent"
    assert [e.rcpt_tos for e in handler.envelopes] == [["other@example.org"]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def test_a_result_is_recorded_only_under_the_claim_that_owns_the_row(conf_dir, make_app,
                                                                     smtp_sink, database):
    use_sink(conf_dir, smtp_sink[0])
    app = make_app(database=database)
    queue_to(app, ["owner@example.org"])
    settings = app.config.outbound
    now = datetime.now(timezone.utc)
    [first] = delivery.claim(app.store, settings, now, 10)
    after = now + timedelta(seconds=settings["lease"] + 1)        # the first lease ended
    [second] = delivery.claim(app.store, settings, after, 10)
    assert first.lease_token != second.lease_token
    sent = delivery.Result(first.id, "sent", "250 OK")
    assert not delivery.record_sent(app.store, first.lease_token, first.id, after)
    delivery.record(app.store, settings, first.lease_token,
                    [delivery.Result(first.id, "retry", "451 later")], after)
    row = by_rcpt(app)["owner@example.org"]
    assert (row.status, row.attempts, row.lease_token) == ("pending", 0, second.lease_token)
    delivery.record(app.store, settings, second.lease_token, [sent], after)
    row = by_rcpt(app)["owner@example.org"]
    assert (row.status, row.attempts, row.lease_token) == ("sent", 1, None)


def test_a_batch_longer_than_its_lease_keeps_its_rows(conf_dir, make_app, sink_factory,
                                                     database):
    class Slow(RecordingSink):
        async def handle_DATA(self, server, session, envelope):
            # one DATA alone outlasts the lease; the six together take over three leases
            await asyncio.sleep(1.5 if envelope.rcpt_tos == ["slow2@example.org"] else 0.4)
            return await super().handle_DATA(server, session, envelope)

    controller, handler = sink_factory(Slow())
    use_sink(conf_dir, controller, ", lease: 1, batch: 6")
    app = make_app(database=database)
    queue_to(app, [f"slow{i}@example.org" for i in range(6)])
    others = []
    stop = threading.Event()

    def second_worker():
        while not stop.is_set():
            others.extend(delivery.deliver_due(app.store, app.config))
            stop.wait(0.1)

    first = threading.Thread(target=delivery.deliver_due, args=(app.store, app.config))
    first.start()
    threading.Event().wait(0.2)          # the first worker has claimed all six
    second = threading.Thread(target=second_worker)
    second.start()
    first.join()
    stop.set()
    second.join()
    assert others == []
    ids = Counter(email.message_from_bytes(e.content)["Message-ID"] for e in handler.envelopes)
    assert len(ids) == 6 and set(ids.values()) == {1}
    assert {r.status for r in by_rcpt(app).values()} == {"sent"}
