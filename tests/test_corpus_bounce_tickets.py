"""Bounces from the Zammad corpus (expected-behaviour.yml): attached to the ticket of the quoted
original Message-ID as a bounce article, flagged automatic (no auto-response), ticket state
unchanged; a closed ticket stays closed."""
from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy import select

from gateway.intake import accept
from gateway.processing import process_inbound
from gateway.store.models import Ticket
from tests.corpus import corpus_dir

ROOT = corpus_dir() / "zammad"
EXPECTED = ROOT / "expected-behaviour.yml"
# Zammad's own regex (case-sensitive): the first References/Message-ID line is the enclosed
# original's.
_QUOTED_ID = re.compile(rb"^(?:References|Message-ID): (\S*)", re.MULTILINE)


def cases():
    if not EXPECTED.exists():
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"corpus not available: {EXPECTED} (set $TICKETGATE_CORPUS)"))]
    data = yaml.safe_load(EXPECTED.read_text())
    return [pytest.param(path, facts, id=path.rsplit("/", 1)[-1]) for path, facts in data.items()]


@pytest.mark.parametrize("path,facts", cases())
def test_bounce_joins_the_ticket_of_the_original(path, facts, app):
    raw = (ROOT / path).read_bytes()
    ids = [m.strip(b"<>").decode() for m in _QUOTED_ID.findall(raw)]
    original = ids[0]
    closed = "closed" in str(facts.get("ticket_state", ""))
    state = "closed successful" if closed else "open"
    seed = (f"From: agent@example.com\nTo: someone@example.org\nSubject: our answer\n"
            f"Message-ID: <{original}>\n\nHello\n").encode()
    first = process_inbound(app.store, app.pipeline, accept(app.store, seed).inbound_id)
    with app.store.session() as s:
        s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one() \
            .state = state
    out = process_inbound(app.store, app.pipeline, accept(app.store, raw).inbound_id)
    assert out.action == "bounce" and out.ticket_number == first.ticket_number
    with app.store.session() as s:
        t = s.execute(select(Ticket).where(Ticket.number == first.ticket_number)).scalar_one()
        assert t.state == state
        bounce = t.articles[-1]
        assert bounce.kind == "bounce"
        assert "bounce" in bounce.flags
        assert any(h.type == "Bounce" for h in t.history)
        assert not any(h.type == "AutoResponse" and "requested" in h.message
                       for h in t.history if h.article_id == bounce.id)
