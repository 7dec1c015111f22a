"""Processing guarantees: one bad mail never blocks the rest, failures are counted and end in
quarantine (never deleted), reprocess brings them back; the same on PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.intake import accept
from gateway.processing import process_batch, process_inbound, process_pending, requeue
from gateway.parts import AfterApply
from gateway.store.models import Article, InboundMail, Ticket
from tests.mails import make_mail


def poison(app, word="POISON"):
    """An after-apply hook that fails (like a bug would) for mails whose subject has ``word``."""
    def hook(pipeline, session, decision, ticket, article):
        if word in decision.mail.subject:
            raise RuntimeError(f"simulated bug on {decision.mail.subject!r}")
    app.pipeline.after_apply = (*app.pipeline.after_apply, AfterApply("poison", hook))


def statuses(app):
    with app.store.session() as s:
        return dict(s.execute(select(InboundMail.status, func.count())
                              .group_by(InboundMail.status)).all())


@pytest.mark.parametrize("batch", [1, 10])
def test_bad_mail_does_not_block_the_rest(app, batch):
    poison(app)
    for i in range(10):
        accept(app.store, make_mail(subject=("POISON " if i == 3 else "") + f"mail {i}"))
    outcomes = process_pending(app.store, app.pipeline, batch=batch)
    assert sorted(o.status for o in outcomes) == ["done"] * 9 + ["failed"]
    assert statuses(app) == {"done": 9, "pending": 1}
    with app.store.session() as s:
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == 9
        bad = s.execute(select(InboundMail).where(InboundMail.status == "pending")).scalar_one()
        assert bad.attempts == 1 and "simulated bug" in bad.error


def test_repeated_failure_quarantines_and_reprocess_recovers(app):
    poison(app)
    accepted = accept(app.store, make_mail(subject="POISON pill"))
    limit = app.config.processing["max_attempts"]
    for _ in range(limit):
        out = process_inbound(app.store, app.pipeline, accepted.inbound_id)
    assert out.status == "quarantined"
    assert statuses(app) == {"quarantined": 1}
    assert process_pending(app.store, app.pipeline) == []     # not retried forever
    app.pipeline.after_apply = app.pipeline.after_apply[:-1]  # "the bug is fixed"
    assert requeue(app.store, accepted.inbound_id)
    out = process_inbound(app.store, app.pipeline, accepted.inbound_id)
    assert out.status == "done" and out.action == "new_ticket"


def test_batch_sees_tickets_created_earlier_in_the_same_batch(app):
    accept(app.store, make_mail(subject="first", msgid="batch-first@customer.test"))
    accept(app.store, make_mail(subject="Re: first", in_reply_to="batch-first@customer.test"))
    ids = [o for o in process_batch(app.store, app.pipeline, [1, 2])]
    assert [o.action for o in ids] == ["new_ticket", "follow_up"]
    assert ids[0].ticket_number == ids[1].ticket_number


def test_pipeline_on_postgresql(make_app, postgres_url):
    app = make_app(database=postgres_url)
    first = process_inbound(app.store, app.pipeline,
                            accept(app.store, make_mail(subject="pg", msgid="pg1@c.test")).inbound_id)
    assert first.action == "new_ticket"
    follow = process_inbound(app.store, app.pipeline, accept(
        app.store, make_mail(subject=f"Re: [Ticket#{first.ticket_number}]")).inbound_id)
    assert follow.action == "follow_up" and follow.ticket_number == first.ticket_number
    for i in range(5):
        accept(app.store, make_mail(subject=f"batch {i}"))
    outs = process_pending(app.store, app.pipeline, batch=5)
    assert {o.status for o in outs} == {"done"}
    with app.store.session() as s:
        assert s.execute(select(func.count()).select_from(Article)).scalar_one() == 7


def test_duplicate_on_postgresql(make_app, postgres_url):
    app = make_app(database=postgres_url)
    raw = make_mail(subject="dup", msgid="dup-pg@c.test")
    a, b = accept(app.store, raw), accept(app.store, raw)
    assert not a.duplicate and b.duplicate and a.inbound_id == b.inbound_id


def test_concurrent_ingestion_on_postgresql_gives_unique_numbers(make_app, postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    apps = [make_app(database=postgres_url) for _ in range(4)]

    def work(k):
        app = apps[k]
        return [process_inbound(app.store, app.pipeline, accept(
            app.store, make_mail(subject=f"w{k} m{i}")).inbound_id).ticket_number
            for i in range(10)]

    with ThreadPoolExecutor(4) as pool:
        numbers = [n for chunk in pool.map(work, range(4)) for n in chunk]
    assert len(numbers) == 40 == len(set(numbers))


def test_migrations_head_and_skip_when_current(make_app, db_url):
    from alembic.script import ScriptDirectory
    from alembic.config import Config as AlembicConfig

    from gateway.store.db import MIGRATIONS, _at_head, head_revision

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    app = make_app()
    assert _at_head(app.store.engine)
    with app.store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert not _at_head(app.store.engine)


def test_the_inbound_row_names_its_ticket_even_when_nothing_flushed_it(app, ingest):
    """Without after-apply hooks nothing flushes the new ticket before the inbound row is
    marked done: the row must still point at the ticket."""
    app.pipeline.after_apply = ()
    outcome = ingest(make_mail(subject="no hooks"))
    with app.store.read_session() as s:
        row = s.get(InboundMail, outcome.inbound_id)
        ticket = s.execute(select(Ticket).where(Ticket.number == outcome.ticket_number)).scalar_one()
        assert row.ticket_id == ticket.id
