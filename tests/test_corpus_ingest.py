"""Every mail in ../shared/corpus, broken ones included, goes through the whole pipeline
(accept -> parse -> pre-filters -> follow-up -> store) without a crash and without a loss."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from gateway.intake import accept
from gateway.processing import process_inbound
from gateway.store.models import InboundMail
from tests.corpus import MAIL_DIRS, mail_files, require_corpus


@pytest.mark.parametrize("sub", MAIL_DIRS)
def test_every_corpus_mail_is_ingested(sub, app):
    require_corpus(sub)
    files = mail_files(sub)
    assert files, f"no mails found under corpus/{sub}"
    statuses, failures = Counter(), []
    for path in files:
        raw = path.read_bytes()
        if not raw.strip():
            continue
        accepted = accept(app.store, raw)
        outcome = process_inbound(app.store, app.pipeline, accepted.inbound_id)
        statuses[outcome.status] += 1
        if outcome.status not in ("done", "ignored", "skipped"):
            failures.append(f"{path.name}: {outcome.status} {outcome.error}")
    assert not failures, "\n".join(failures)
    with app.store.session() as s:
        pending = s.execute(select(func.count()).select_from(InboundMail)
                            .where(InboundMail.status != "done")
                            .where(InboundMail.status != "ignored")).scalar_one()
    assert pending == 0
    print(f"\ncorpus/{sub}: {sum(statuses.values())} mails: {dict(statuses)}")
